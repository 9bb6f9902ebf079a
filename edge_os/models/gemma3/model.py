"""Gemma 3 (text) in ``tvm.relax.frontend.nn`` on TVM's paged KV cache.

What differs from Llama: the embeddings are scaled by ``sqrt(hidden)``; q and k are RMS-normalized
per head before RoPE; five of every six layers attend to a sliding window of recent tokens (the
cache's ``mha_sliding`` layers) and rotate with ``rope_local_base_freq``, the others attend to
everything and rotate with ``rope_theta``; every block's output is normalized again before it is
added to the residual; the MLP is GeGLU (tanh-approximated GELU); the output projection is the
embedding table, with optional soft-capping of the logits. RMSNorm weights are the full scale
(Gemma's ``1 + w``, added when the weights are packed: ``edge_os.models.gemma3.weights``).

RoPE is applied here, not by the cache (the cache knows one base): the cosines and sines of each
token's position are computed once per forward for each base and shared by the layers.
"""

from __future__ import annotations

import math

from tvm import te, tirx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache

from edge_os.models.gemma3.config import Gemma3Config
from edge_os.models.llama.model import KVCacheFactory, LlamaForCausalLM


def _rope_tables(positions: nn.Tensor, theta: float, dim: int, factor: float) -> tuple[nn.Tensor, nn.Tensor]:
    """``(cos, sin)`` of shape ``(tokens, dim)`` for the "rotate half" layout: entry ``d`` holds
    the angle of frequency ``d mod dim/2``; the sines of the first half are negated, so that
    ``x * cos + rotate(x) * sin`` is RoPE with ``rotate(x)[d] = x[(d + dim/2) mod dim]``."""
    half = dim // 2

    def angle(p, d):
        exponent = tirx.Cast("float32", (d % half) * 2) / tirx.const(float(dim), "float32")
        inv_freq = tirx.const(1.0 / factor, "float32") / tirx.pow(tirx.const(theta, "float32"), exponent)
        return tirx.Cast("float32", p) * inv_freq

    def cos(pos: te.Tensor) -> te.Tensor:
        return te.compute((pos.shape[0], dim), lambda t, d: tirx.cos(angle(pos[t], d)), name="rope_cos")

    def sin(pos: te.Tensor) -> te.Tensor:
        return te.compute((pos.shape[0], dim), lambda t, d: tirx.if_then_else(
            d < half, -tirx.sin(angle(pos[t], d)), tirx.sin(angle(pos[t], d))), name="rope_sin")

    return op.tensor_expr_op(cos, "rope_cos", [positions]), op.tensor_expr_op(sin, "rope_sin", [positions])


def _rotate(x: nn.Tensor, cos: nn.Tensor, sin: nn.Tensor) -> nn.Tensor:
    """RoPE of ``x`` ``(batch, seq, heads, dim)``; token ``(b, s)`` is row ``b * seq + s`` of the tables."""

    def compute(x: te.Tensor, c: te.Tensor, s: te.Tensor) -> te.Tensor:
        seq, dim = x.shape[1], x.shape[3]
        return te.compute(x.shape, lambda b, t, h, d: x[b, t, h, d] * c[b * seq + t, d]
                          + x[b, t, h, (d + dim // 2) % dim] * s[b * seq + t, d], name="rope")

    return op.tensor_expr_op(compute, "rope", [x, cos, sin])


class Gemma3Attention(nn.Module):
    def __init__(self, config: Gemma3Config, kv_dtype: str = "float32"):
        self.kv_dtype = kv_dtype
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        self.scale = config.attention_scale
        qkv_out = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, qkv_out, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)
        self.q_norm = nn.RMSNorm(self.head_dim, -1, config.rms_norm_eps, bias=False)
        self.k_norm = nn.RMSNorm(self.head_dim, -1, config.rms_norm_eps, bias=False)

    def forward(self, x: nn.Tensor, cache: PagedKVCache, layer_id: int, rope: tuple[nn.Tensor, nn.Tensor]):
        b, s, _ = x.shape
        heads, kv = self.num_heads, self.num_kv_heads
        qkv = op.reshape(self.qkv_proj(x), (b, s, heads + 2 * kv, self.head_dim))
        q, k, v = op.split(qkv, [heads, heads + kv], axis=2)
        q, k = _rotate(self.q_norm(q), *rope), _rotate(self.k_norm(k), *rope)
        qkv = op.concat([q, k, v], dim=2)
        dtype = qkv.dtype
        if self.kv_dtype != dtype:
            qkv = qkv.astype(self.kv_dtype)
        out = cache.attention_with_fused_qkv(layer_id, qkv, heads, sm_scale=self.scale)
        if out.dtype != dtype:
            out = out.astype(dtype)
        return self.o_proj(op.reshape(out, (b, s, heads * self.head_dim)))


class Gemma3MLP(nn.Module):
    def __init__(self, config: Gemma3Config):
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        gate, up = op.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(op.gelu(gate, approximate="tanh") * up)


class Gemma3DecoderLayer(nn.Module):
    def __init__(self, config: Gemma3Config, kv_dtype: str = "float32"):
        norm = lambda: nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)  # noqa: E731
        self.input_layernorm, self.post_attention_layernorm = norm(), norm()
        self.pre_feedforward_layernorm, self.post_feedforward_layernorm = norm(), norm()
        self.self_attn = Gemma3Attention(config, kv_dtype)
        self.mlp = Gemma3MLP(config)

    def forward(self, x: nn.Tensor, cache: PagedKVCache, layer_id: int, rope) -> nn.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cache, layer_id, rope))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma3Model(nn.Module):
    def __init__(self, config: Gemma3Config, kv_dtype: str = "float32"):
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([Gemma3DecoderLayer(config, kv_dtype) for _ in range(config.num_hidden_layers)])
        self.norm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)

    def forward(self, x: nn.Tensor, cache: PagedKVCache) -> nn.Tensor:
        c = self.config
        b, s, _ = x.shape
        positions = cache.get_query_positions(b * s)
        factor = float(c.rope_scaling.get("factor", 1.0)) if c.rope_scaling else 1.0
        local = _rope_tables(positions, c.rope_local_base_freq, c.head_dim, 1.0)
        full = _rope_tables(positions, c.rope_theta, c.head_dim, factor)
        for layer_id, layer in enumerate(self.layers):
            x = layer(x, cache, layer_id, local if c.is_sliding(layer_id) else full)
        return self.norm(x)


class Gemma3ForCausalLM(LlamaForCausalLM):
    """Llama's entry points (embed, prefill, prefill_ragged, prefill_all, decode, create_paged_kv_cache)
    over Gemma 3."""

    def __init__(self, config: Gemma3Config, kv_cache_factory: KVCacheFactory):
        self.config = config
        self.kv_cache_factory = kv_cache_factory
        self.model = Gemma3Model(config, kv_cache_factory.dtype)
        self.lm_head = None  # tied: the embedding table projects to the vocabulary

    def embed(self, input_ids: nn.Tensor) -> nn.Tensor:
        """``(seq,) int32 -> (seq, hidden)``, scaled by ``sqrt(hidden)``."""
        return self.model.embed_tokens(input_ids) * math.sqrt(self.config.hidden_size)

    def _logits(self, hidden: nn.Tensor) -> nn.Tensor:
        logits = self.model.embed_tokens.lm_head(hidden)
        cap = self.config.final_logit_softcapping
        return op.tanh(logits / cap) * cap if cap else logits
