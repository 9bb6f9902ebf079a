"""Kernels for aarch64 CPUs with NEON (Cortex-A53 and later; the Raspberry Pi 5's A76).

Prefill uses the FP32 path of ``matmul_fp32``; decode the integer products of ``neon_dot`` with
the activations rounded to int16 (widening multiply-adds, any ARMv8 core) or int8 (``sdot``, on
cores with ``+dotprod``), or FP32 when asked for. 32 vector registers of 4 float32: an 8-lane
prefill vector is two registers, so the AVX2 tiling fits with room to spare, and decode keeps 8
row accumulators.
"""

from __future__ import annotations

import tvm

from edge_os.compile.kernels import neon_dot, register
from edge_os.compile.kernels.features import arch, has
from edge_os.compile.kernels.matmul_fp32 import (
    ROUNDED_BITS_ATTR,
    ROUNDED_ROWS_ATTR,
    MatmulTiling,
    build_matmul,
    supports,
)
from edge_os.compile.kernels.weights import WeightLayout

TILING = MatmulTiling(rows=8, tile_rows=16, tile_tokens=6, gemm_from=8)
ACTIVATION_BITS = {"int16": 16, "int8": 8}


def applies(target: tvm.target.Target) -> bool:
    return arch(target) == "aarch64" and has(target, "neon")


def build(info: dict, target: tvm.target.Target):
    if info["op"] != "matmul":
        return None
    layout = WeightLayout.from_info(info)
    if not supports(layout, TILING):
        return None
    bits = ACTIVATION_BITS.get(info.get("activations", "float32"))
    if bits == 8 and not has(target, "dotprod"):
        bits = 16  # no sdot on this core: the widening multiply-adds, which round less
    if bits is None or not neon_dot.supports(layout):
        return build_matmul(layout, TILING)
    func = build_matmul(layout, TILING, neon_dot.decoder(bits))
    return func.with_attrs({ROUNDED_ROWS_ATTR: TILING.gemm_from, ROUNDED_BITS_ATTR: bits})


register(applies, build)
