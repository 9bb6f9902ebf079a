"""Builds TVM's paged KV cache for a target: the model asks, the target decides the kernels."""

from __future__ import annotations

from tvm import relax
from tvm.relax.frontend.nn.llm.kv_cache import RopeMode, TIRPagedKVCache


def kv_cache_factory(tvm_target, dtype: str = "float32"):
    """A factory ``(config, *symbolic sizes) -> PagedKVCache`` bound to ``tvm_target``."""

    def make(config, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size, support_sliding_window):
        return TIRPagedKVCache(
            attn_kind="mha",
            max_batch_size=max_batch_size,
            max_total_seq_len=max_total_seq_len,
            prefill_chunk_size=prefill_chunk_size,
            page_size=page_size,
            support_sliding_window=support_sliding_window,
            layer_partition=relax.ShapeExpr([0, config.num_hidden_layers]),
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads,
            qk_head_dim=config.head_dim,
            v_head_dim=config.head_dim,
            mla_original_qk_head_dim=0,
            mla_original_v_head_dim=0,
            rope_mode=RopeMode.NORMAL,
            rope_scale=1,
            rope_theta=config.rope_theta,
            rope_scaling=dict(config.rope_scaling or {}),
            rope_ext_factors=relax.prim_value(0),
            rotary_dim=config.head_dim,
            enable_disaggregation=False,
            dtype=dtype,
            target=tvm_target,
        )

    return make
