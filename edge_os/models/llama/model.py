"""Llama in ``tvm.relax.frontend.nn`` with TVM's paged KV cache (RoPE is applied by the cache).

The layers are plain float ``nn.Linear``/``nn.Embedding``; ``edge_os.quantize.modules`` swaps
them for quantized twins. Q/K/V and gate/up are stored fused (``qkv_proj``, ``gate_up_proj``) so a
layer is two matmuls fewer. Nothing here depends on the target: the KV cache is built by an
injected factory and kernels are chosen by the compile pipeline.
"""

from __future__ import annotations

from typing import Protocol

from tvm import te, tirx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache

from edge_os.models.llama.config import LlamaConfig


class KVCacheFactory(Protocol):
    """Builds the cache: ``(config, max_batch_size, max_total_seq_len, prefill_chunk_size,
    page_size, support_sliding_window) -> PagedKVCache``. ``dtype`` is the dtype the cache stores
    K/V in and takes q/k/v in (the compile side chooses it per target)."""

    dtype: str

    def __call__(self, config: LlamaConfig, *sizes: tirx.Var) -> PagedKVCache: ...


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig, kv_dtype: str = "float32"):
        self.kv_dtype = kv_dtype
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        qkv_out = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, qkv_out, bias=config.attention_bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x: nn.Tensor, cache: PagedKVCache, layer_id: int) -> nn.Tensor:
        b, s, _ = x.shape
        qkv = op.reshape(self.qkv_proj(x), (b, s, self.num_heads + 2 * self.num_kv_heads, self.head_dim))
        # The cache takes q/k/v and returns the output in the dtype of its pages.
        dtype = qkv.dtype
        if self.kv_dtype != dtype:
            qkv = qkv.astype(self.kv_dtype)
        out = cache.attention_with_fused_qkv(layer_id, qkv, self.num_heads, sm_scale=self.head_dim**-0.5)
        if out.dtype != dtype:
            out = out.astype(dtype)  # (b, s, heads, head_dim)
        return self.o_proj(op.reshape(out, (b, s, self.num_heads * self.head_dim)))  # (b, s, hidden)


class MLP(nn.Module):
    def __init__(self, config: LlamaConfig):
        self.intermediate_size = config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        gate, up = op.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(op.silu(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, kv_dtype: str = "float32"):
        self.input_layernorm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)
        self.self_attn = Attention(config, kv_dtype)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)
        self.mlp = MLP(config)

    def forward(self, x: nn.Tensor, cache: PagedKVCache, layer_id: int) -> nn.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cache, layer_id)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, config: LlamaConfig, kv_dtype: str = "float32"):
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(config, kv_dtype) for _ in range(config.num_hidden_layers)])
        self.norm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)

    def forward(self, x: nn.Tensor, cache: PagedKVCache) -> nn.Tensor:
        for layer_id, layer in enumerate(self.layers):
            x = layer(x, cache, layer_id)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, config: LlamaConfig, kv_cache_factory: KVCacheFactory):
        self.config = config
        self.kv_cache_factory = kv_cache_factory
        self.model = LlamaModel(config, kv_cache_factory.dtype)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(
            config.hidden_size, config.vocab_size, bias=False
        )

    def _logits(self, hidden: nn.Tensor) -> nn.Tensor:
        if self.lm_head is None:
            return self.model.embed_tokens.lm_head(hidden)
        return self.lm_head(hidden)

    def embed(self, input_ids: nn.Tensor) -> nn.Tensor:
        """``(seq,) int32 -> (seq, hidden)``."""
        return self.model.embed_tokens(input_ids)

    def prefill(self, embeds: nn.Tensor, cache: PagedKVCache):
        """One sequence's chunk ``(1, seq, hidden)`` -> logits of its last token ``(1, 1, vocab)``."""
        hidden = self.model(embeds, cache)
        return self._logits(_last_token(hidden)), cache

    def prefill_ragged(self, embeds: nn.Tensor, logit_positions: nn.Tensor, cache: PagedKVCache):
        """The new tokens of several sequences in one flat stream ``(1, tokens, hidden)``, each
        sequence's tokens together and in the order and lengths given to ``begin_forward`` (a
        decode token is a length of 1) -> logits at ``logit_positions`` ``(n,) int32``, ``(1, n, vocab)``."""
        hidden = self.model(embeds, cache)
        return self._logits(op.take(hidden, logit_positions, axis=1)), cache

    def prefill_all(self, embeds: nn.Tensor, cache: PagedKVCache):
        """Like ``prefill`` but logits of every position ``(1, seq, vocab)`` (perplexity)."""
        return self._logits(self.model(embeds, cache)), cache

    def decode(self, embeds: nn.Tensor, cache: PagedKVCache):
        """One new token of each of ``batch`` sequences ``(batch, 1, hidden)`` -> ``(batch, 1, vocab)``."""
        return self._logits(self.model(embeds, cache)), cache

    def create_paged_kv_cache(self, max_batch_size: tirx.Var, max_total_seq_len: tirx.Var,
                              prefill_chunk_size: tirx.Var, page_size: tirx.Var,
                              support_sliding_window: tirx.Var) -> PagedKVCache:
        return self.kv_cache_factory(self.config, max_batch_size, max_total_seq_len,
                                     prefill_chunk_size, page_size, support_sliding_window)

    def get_default_spec(self):
        hidden = self.config.hidden_size
        packed = {"param_mode": "packed", "effect_mode": "none"}
        cache = nn.spec.Object(object_type=PagedKVCache)
        return nn.spec.ModuleSpec.from_raw({
            "embed": {"input_ids": nn.spec.Tensor(["seq_len"], "int32"), "$": packed},
            "prefill": {"embeds": nn.spec.Tensor([1, "seq_len", hidden], "float32"), "cache": cache, "$": packed},
            "prefill_ragged": {"embeds": nn.spec.Tensor([1, "seq_len", hidden], "float32"),
                               "logit_positions": nn.spec.Tensor(["num_logits"], "int32"), "cache": cache, "$": packed},
            "prefill_all": {"embeds": nn.spec.Tensor([1, "seq_len", hidden], "float32"), "cache": cache, "$": packed},
            "decode": {"embeds": nn.spec.Tensor(["batch_size", 1, hidden], "float32"), "cache": cache, "$": packed},
            "create_paged_kv_cache": {
                "max_batch_size": int, "max_total_seq_len": int, "prefill_chunk_size": int,
                "page_size": int, "support_sliding_window": int,
                "$": {"param_mode": "none", "effect_mode": "none"},
            },
        }, self)


def _last_token(hidden: nn.Tensor) -> nn.Tensor:
    """``(1, seq, hidden) -> (1, 1, hidden)``: the last position."""

    def compute(h: te.Tensor) -> te.Tensor:
        return te.compute((1, 1, h.shape[2]), lambda b, _, d: h[b, h.shape[1] - 1, d], name="last_token")

    return op.tensor_expr_op(compute, "last_token", [hidden])
