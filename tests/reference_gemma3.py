"""An independent float32 numpy forward pass of Gemma 3 (the test oracle).

It shares no code with edge_os and follows Hugging Face's ``Gemma3ForCausalLM``: embeddings scaled
by ``sqrt(hidden)``; RMSNorm multiplying by ``1 + w`` (weights in Hugging Face's convention);
q/k normalized per head before RoPE in the "rotate half" layout, with ``rope_local_base_freq`` on
sliding-window layers and ``rope_theta`` on global ones; plain attention over the whole sequence
with a causal mask, narrowed on sliding layers to the last ``sliding_window`` positions; each
block's output normalized before the residual add; GeGLU with tanh GELU; tied output projection.
``kv_dtype=np.float16`` rounds where a float16 KV cache does: q/k/v as they enter the cache (after
RoPE) and the attention output.

The vocabulary of real Gemma models is 262k tokens, so the output projection is done in row
blocks of the embedding table (``logits``), never as one dense matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def _rms_norm(x, w, eps):
    x = x.astype(np.float32)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def _rope(x, positions, theta):
    half = x.shape[-1] // 2
    inv_freq = 1.0 / (theta ** (np.arange(half, dtype=np.float64) * 2 / x.shape[-1]))
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]
    cos = np.cos(angles).astype(np.float32)[:, None, :]
    sin = np.sin(angles).astype(np.float32)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def is_sliding(config: dict, layer: int) -> bool:
    types = config.get("layer_types")
    if types:
        return types[layer] == "sliding_attention"
    return (layer + 1) % config.get("sliding_window_pattern", 6) != 0


def hidden_states(config: dict, weights: dict[str, np.ndarray], embeddings: np.ndarray,
                  kv_dtype=np.float32) -> np.ndarray:
    """The final normalized hidden states ``(seq, hidden)`` of a sequence starting at position 0,
    given its rows of the embedding table ``(seq, hidden)`` (unscaled)."""
    store = lambda a: a.astype(kv_dtype).astype(np.float32)  # noqa: E731
    h = config["hidden_size"]
    heads, kv, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    eps, window = config["rms_norm_eps"], config["sliding_window"]
    scale = (config.get("query_pre_attn_scalar") or d) ** -0.5
    seq = len(embeddings)
    pos = np.arange(seq)
    x = embeddings.astype(np.float32) * np.float32(math.sqrt(h))
    distance = pos[:, None] - pos[None, :]  # query - key
    causal = np.where(distance >= 0, 0.0, -np.inf).astype(np.float32)
    local = np.where((distance >= 0) & (distance < window), 0.0, -np.inf).astype(np.float32)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        w = lambda name, p=p: weights[p + name]  # noqa: E731
        sliding = is_sliding(config, layer)
        theta = config["rope_local_base_freq"] if sliding else config["rope_theta"]
        hn = _rms_norm(x, w("input_layernorm.weight"), eps)
        q = (hn @ w("self_attn.q_proj.weight").T).reshape(seq, heads, d)
        k = (hn @ w("self_attn.k_proj.weight").T).reshape(seq, kv, d)
        v = (hn @ w("self_attn.v_proj.weight").T).reshape(seq, kv, d)
        q = store(_rope(_rms_norm(q, w("self_attn.q_norm.weight"), eps), pos, theta))
        k = store(_rope(_rms_norm(k, w("self_attn.k_norm.weight"), eps), pos, theta))
        v = store(v)
        k, v = np.repeat(k, heads // kv, axis=1), np.repeat(v, heads // kv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) * np.float32(scale) + (local if sliding else causal)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attn = store(np.einsum("hqk,khd->qhd", scores, v)).reshape(seq, heads * d)
        x = x + _rms_norm(attn @ w("self_attn.o_proj.weight").T, w("post_attention_layernorm.weight"), eps)
        hn = _rms_norm(x, w("pre_feedforward_layernorm.weight"), eps)
        gate, up = hn @ w("mlp.gate_proj.weight").T, hn @ w("mlp.up_proj.weight").T
        mlp = (_gelu_tanh(gate) * up) @ w("mlp.down_proj.weight").T
        x = x + _rms_norm(mlp, w("post_feedforward_layernorm.weight"), eps)
    return _rms_norm(x, weights["model.norm.weight"], eps)


def logits(config: dict, hidden: np.ndarray, table_blocks: Iterable[np.ndarray]) -> np.ndarray:
    """``hidden @ E^T`` ``(seq, vocab)`` over the embedding table given as consecutive row blocks,
    soft-capped when the model caps its logits."""
    out = np.concatenate([hidden @ block.T for block in table_blocks], axis=1)
    cap = config.get("final_logit_softcapping") or 0.0
    return np.tanh(out / cap) * cap if cap else out
