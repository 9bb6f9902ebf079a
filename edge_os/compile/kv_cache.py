"""Builds TVM's paged KV cache for a target: the model asks, the target decides the kernels and the
dtype the pages are stored in.

TVM's cache keeps one dtype for everything it touches: the fused q/k/v it is given, the pages, its
scratch buffers and the attention output (only the log-sum-exp stays float32). With float16 pages
the model therefore casts q/k/v to float16 before the cache and the output back to float32 after it
(two small elementwise kernels per layer); attention itself widens to float32 in registers and
accumulates in float32 (``edge_os.compile.kernels.attention_cpu``).
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.relax.frontend.nn.llm.kv_cache import RopeMode, TIRPagedKVCache

from edge_os.compile import KV_DTYPES
from edge_os.errors import InputError


def default_kv_dtype(tvm_target: tvm.target.Target) -> str:
    """float16 where the CPU widens halves to floats in one vector instruction: x86-64 with F16C
    (``vcvtph2ps``) and aarch64 (``fcvtl``, part of base AdvSIMD). float32 elsewhere, GPUs
    included, whose kernels this project does not check in float16."""
    if tvm_target.kind.name != "llvm":
        return "float32"
    triple = str(tvm_target.attrs.get("mtriple", ""))
    if triple.startswith("aarch64"):
        return "float16"
    if triple.startswith("x86_64") or not triple:
        from tvm.target.codegen import target_has_features

        return "float16" if target_has_features("f16c", tvm_target) else "float32"
    return "float32"


def resolve_kv_dtype(kv_dtype: str, tvm_target: tvm.target.Target) -> str:
    """``"auto"`` becomes the target's default; float32 and float16 stay as they are."""
    if kv_dtype not in KV_DTYPES:
        raise InputError(f"kv_dtype must be one of {KV_DTYPES}, not {kv_dtype!r}")
    return default_kv_dtype(tvm_target) if kv_dtype == "auto" else kv_dtype


@dataclass(frozen=True)
class KVCacheFactory:
    """``factory(config, *symbolic sizes) -> PagedKVCache`` for ``tvm_target``; ``dtype`` is what
    the pages hold, and what q/k/v must be cast to before ``attention_with_fused_qkv``."""

    tvm_target: tvm.target.Target
    dtype: str = "float32"

    def __call__(self, config, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size,
                 support_sliding_window):
        # A config may ask for per-layer attention kinds (``mha_sliding`` layers and their window)
        # and apply RoPE itself (``paged_kv_options``, e.g. Gemma 3); by default the cache rotates.
        options = config.paged_kv_options() if hasattr(config, "paged_kv_options") else {}
        window = {"layer_sliding_window_size": options["layer_sliding_window_size"]} if (
            "layer_sliding_window_size" in options) else {}
        return TIRPagedKVCache(
            attn_kind=options.get("attn_kind", "mha"),
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
            rope_mode=RopeMode.NORMAL if options.get("rope", True) else RopeMode.NONE,
            rope_scale=1,
            rope_theta=config.rope_theta,
            rope_scaling=dict(config.rope_scaling or {}) if options.get("rope", True) else {},
            rope_ext_factors=relax.prim_value(0),
            rotary_dim=config.head_dim,
            enable_disaggregation=False,
            dtype=self.dtype,
            target=self.tvm_target,
            **window,
        )


def kv_cache_factory(tvm_target: tvm.target.Target, dtype: str = "auto") -> KVCacheFactory:
    """The factory for ``tvm_target`` with pages of ``dtype`` (``"auto"``: the target's default)."""
    return KVCacheFactory(tvm_target, resolve_kv_dtype(dtype, tvm_target))
