"""Kernels for x86-64 CPUs with AVX2 and FMA (Haswell and later, every Zen).

Decode and prefill use the FP32 paths of ``matmul_fp32``; with ``activations="int8"`` decode
rounds activations to int8 and uses ``vpmaddubsw`` (``avx2_int8``) where the format allows it.
16 vector registers: the decode path keeps 4 row accumulators and 4 shared activation vectors
live; the prefill micro-kernel 6 x 2 accumulators, 2 weight vectors and a broadcast.
"""

from __future__ import annotations

import tvm

from edge_os.compile.kernels import avx2_int8, register
from edge_os.compile.kernels.features import arch, has
from edge_os.compile.kernels.matmul_fp32 import INT8_ROWS_ATTR, MatmulTiling, build_matmul, supports
from edge_os.compile.kernels.weights import WeightLayout

TILING = MatmulTiling(rows=4, tile_rows=16, tile_tokens=6, gemm_from=8)


def applies(target: tvm.target.Target) -> bool:
    return arch(target) == "x86_64" and has(target, "avx2", "fma")


def build(info: dict, target: tvm.target.Target):
    if info["op"] != "matmul":
        return None
    layout = WeightLayout.from_info(info)
    if not supports(layout, TILING):
        return None
    if info.get("activations") != "int8" or not avx2_int8.supports(layout):
        return build_matmul(layout, TILING)
    func = build_matmul(layout, TILING, avx2_int8.decode)
    return func.with_attr(INT8_ROWS_ATTR, TILING.gemm_from)


register(applies, build)
