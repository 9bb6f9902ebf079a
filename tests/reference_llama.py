"""An independent float32 numpy forward pass of a Llama/Qwen2 model (the test oracle).

It shares no code with edge_os: plain attention over the whole sequence, RoPE in the Hugging Face
"rotate half" layout, grouped-query attention by repeating K/V heads. ``kv_dtype=np.float16``
rounds where a float16 KV cache does: q/k/v as they enter the cache, q/k again after RoPE (which is
computed in float32), and the attention output; everything else stays float32.
"""

from __future__ import annotations

import numpy as np


def _rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x, positions, theta):
    # x: (seq, heads, head_dim)
    half = x.shape[-1] // 2
    inv_freq = 1.0 / (theta ** (np.arange(half, dtype=np.float64) * 2 / x.shape[-1]))
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]  # (seq, half)
    cos = np.cos(angles).astype(np.float32)[:, None, :]
    sin = np.sin(angles).astype(np.float32)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(config: dict, weights: dict[str, np.ndarray], ids: list[int], kv_dtype=np.float32) -> np.ndarray:
    """Logits ``(len(ids), vocab)`` for a token sequence starting at position 0."""
    store = lambda a: a.astype(kv_dtype).astype(np.float32)  # noqa: E731
    h = config["hidden_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or h // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    seq = len(ids)
    pos = np.arange(seq)
    x = weights["model.embed_tokens.weight"][np.asarray(ids)].astype(np.float32)
    mask = np.triu(np.full((seq, seq), -np.inf, dtype=np.float32), k=1)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        w = lambda name, p=p: weights[p + name]  # noqa: E731
        hn = _rms_norm(x, w("input_layernorm.weight"), eps)
        q = hn @ w("self_attn.q_proj.weight").T
        k = hn @ w("self_attn.k_proj.weight").T
        v = hn @ w("self_attn.v_proj.weight").T
        if p + "self_attn.q_proj.bias" in weights:
            q, k, v = q + w("self_attn.q_proj.bias"), k + w("self_attn.k_proj.bias"), v + w("self_attn.v_proj.bias")
        q, k, v = store(q), store(k), store(v)
        q = store(_rope(q.reshape(seq, heads, d), pos, theta))
        k = store(_rope(k.reshape(seq, kv, d), pos, theta))
        v = v.reshape(seq, kv, d)
        k, v = np.repeat(k, heads // kv, axis=1), np.repeat(v, heads // kv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attn = store(np.einsum("hqk,khd->qhd", scores, v)).reshape(seq, heads * d)
        x = x + attn @ w("self_attn.o_proj.weight").T
        hn = _rms_norm(x, w("post_attention_layernorm.weight"), eps)
        gate, up = hn @ w("mlp.gate_proj.weight").T, hn @ w("mlp.up_proj.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w("mlp.down_proj.weight").T
    x = _rms_norm(x, weights["model.norm.weight"], eps)
    head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    return x @ head.T
