"""Kernels for x86-64 CPUs with AVX2 and FMA (Haswell and later, every Zen).

16 vector registers of 8 float32: the decode path keeps 4 row accumulators, 4 activation vectors
and their sum live; the prefill micro-kernel 6 x 2 accumulators plus 2 weight vectors and one
broadcast.
"""

from __future__ import annotations

import tvm

from edge_os.compile.kernels import register
from edge_os.compile.kernels.features import arch, has
from edge_os.compile.kernels.matmul_fp32 import MatmulTiling, build_matmul, supports
from edge_os.compile.kernels.weights import WeightLayout

TILING = MatmulTiling(rows=4, tile_rows=16, tile_tokens=6, gemm_from=8)


def applies(target: tvm.target.Target) -> bool:
    return arch(target) == "x86_64" and has(target, "avx2", "fma")


def build(info: dict, target: tvm.target.Target):
    if info["op"] != "matmul":
        return None
    layout = WeightLayout.from_info(info)
    return build_matmul(layout, TILING) if supports(layout, TILING) else None


register(applies, build)
