"""Kernels for x86-64 CPUs with AVX2 and FMA (Haswell and later, every Zen).

Prefill uses the FP32 path of ``matmul_fp32``; decode the integer dot products of ``avx2_dot``
with the activations rounded to int16 or int8 (``activations``), or FP32 when asked for.
16 vector registers: the decode path keeps 4 row accumulators and 4 shared activation vectors
live; the prefill micro-kernel 6 x 2 accumulators, 2 weight vectors and a broadcast. The integer
decode path takes up to 8 rows (``ROUNDED_TILING``), the FP32 one up to 7. With AVX-512BW the
integer decode path uses 512-bit registers for int16 activations (``avx2_dot``'s ``wide``).
"""

from __future__ import annotations

import dataclasses

import tvm

from edge_os.compile.kernels import avx2_dot, register
from edge_os.compile.kernels.features import arch, has
from edge_os.compile.kernels.matmul_fp32 import (
    ROUNDED_BITS_ATTR,
    ROUNDED_ROWS_ATTR,
    MatmulTiling,
    build_matmul,
    supports,
)
from edge_os.compile.kernels.weights import WeightLayout

TILING = MatmulTiling(rows=4, tile_rows=16, tile_tokens=6, gemm_from=8)
# The integer decode path takes calls of up to 256 rows (decode steps, and prefill calls up to the
# default chunk, ``CompileLimits.prefill_chunk``): it unpacks each weight block once for each part
# of 16 rows, where the FP32 matrix product dequantizes its tiles element by element. On Zen 5 the
# 121 matmuls of a SmolLM2-135M step took 13.6 ms at 16 rows (FP32: 55.8), 227 at 256 (FP32: 336).
ROUNDED_TILING = dataclasses.replace(TILING, gemm_from=257)
ACTIVATION_BITS = {"int16": 16, "int8": 8}


def applies(target: tvm.target.Target) -> bool:
    return arch(target) == "x86_64" and has(target, "avx2", "fma")


def build(info: dict, target: tvm.target.Target):
    if info["op"] != "matmul":
        return None
    layout = WeightLayout.from_info(info)
    if not supports(layout, TILING):
        return None
    bits = ACTIVATION_BITS.get(info.get("activations", "float32"))
    if bits is None or not avx2_dot.supports(layout):
        return build_matmul(layout, TILING)
    vnni = has(target, "avx512vnni", "avx512vl") or has(target, "avxvnni")
    func = build_matmul(layout, ROUNDED_TILING, avx2_dot.decoder(bits, wide=has(target, "avx512bw"), vnni=vnni))
    return func.with_attrs({ROUNDED_ROWS_ATTR: ROUNDED_TILING.gemm_from, ROUNDED_BITS_ATTR: bits})


register(applies, build)
