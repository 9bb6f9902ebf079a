"""Kernels for aarch64 CPUs with NEON (Cortex-A53 and later; the Raspberry Pi 5's A76).

32 vector registers of 4 float32: an 8-lane vector is two registers, so the same tiling as AVX2
fits with room to spare; more decode rows per task give more independent FMA chains.
"""

from __future__ import annotations

import tvm

from edge_os.compile.kernels import register
from edge_os.compile.kernels.features import arch, has
from edge_os.compile.kernels.matmul_fp32 import MatmulTiling, build_matmul, supports
from edge_os.compile.kernels.weights import WeightLayout

TILING = MatmulTiling(rows=8, tile_rows=16, tile_tokens=6, gemm_from=8)


def applies(target: tvm.target.Target) -> bool:
    return arch(target) == "aarch64" and has(target, "neon")


def build(info: dict, target: tvm.target.Target):
    if info["op"] != "matmul":
        return None
    layout = WeightLayout.from_info(info)
    return build_matmul(layout, TILING) if supports(layout, TILING) else None


register(applies, build)
