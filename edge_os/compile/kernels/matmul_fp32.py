"""Dequantize-fused matmul kernels with float32 FMA arithmetic: portable to any SIMD CPU.

``y[m, n] = x[m, k] @ W[n, k]^T`` for every weight format, one PrimFunc with two paths chosen at
run time by the number of activation rows ``m``:

- decode (``m`` below ``gemm_from``): matrix-vector. Each task owns a block of ``rows`` weight
  rows and keeps one vector accumulator per row, so each weight byte is read once from memory
  and the rows give independent FMA chains. A group of 32 columns is reduced in registers and
  scaled once (plus the minimum times the group's activation sum for the asymmetric format).
  For ``m > 1`` the same weight block is re-read from L1 for each activation row.
- prefill (``m`` from ``gemm_from``): matrix-matrix. Each task dequantizes a tile of
  ``tile_rows`` weight rows once into a column-major float buffer (in L2), then a register-tiled
  micro-kernel multiplies ``tile_tokens`` activation rows at a time by it.

Vectors are 8 float32 lanes (one AVX2 register, two NEON registers).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels.vector import bcast, const, load, tree_sum, vload, vstore_index
from edge_os.compile.kernels.weights import WeightLayout
from edge_os.quantize.formats import GROUP_SIZE

LANES = 8
# Set on kernels whose decode path rounds activations to integers: calls with fewer rows than
# ROUNDED_ROWS_ATTR are exact only to that rounding, of ROUNDED_BITS_ATTR bits (see ``avx2_dot``).
ROUNDED_ROWS_ATTR = "edge_os.rounded_activation_rows"
ROUNDED_BITS_ATTR = "edge_os.rounded_activation_bits"
WORDS_PER_GROUP = GROUP_SIZE // LANES


@dataclass(frozen=True)
class MatmulTiling:
    rows: int = 4  # decode: weight rows per task, one accumulator register each
    tile_rows: int = 16  # prefill: weight rows per dequantized tile (two vectors wide)
    tile_tokens: int = 6  # prefill: activation rows per micro-kernel (6 x 2 accumulators + 3 = 15 registers)
    gemm_from: int = 8  # m from which the prefill path is faster


def supports(layout: WeightLayout, tiling: MatmulTiling) -> bool:
    return (layout.k % GROUP_SIZE == 0 and layout.n % tiling.rows == 0
            and layout.n % tiling.tile_rows == 0 and tiling.tile_rows % LANES == 0)


def build_matmul(layout: WeightLayout, tiling: MatmulTiling = MatmulTiling(), decode=None) -> tirx.PrimFunc:
    """The PrimFunc ``(x, *weights, y)`` with the reference kernel's signature.

    ``decode`` replaces the FP32 decode path (same arguments as ``decode_fp32``), e.g. with an
    integer dot-product one for an instruction set that has it.
    """
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_attr({"tir.noalias": True, "tirx.is_scheduled": True})
            x_handle = T.arg("x", T.handle())
            weights = layout.declare()
            y_handle = T.arg("y", T.handle())
            m = T.int64()
            x = T.match_buffer(x_handle, (m, layout.k), "float32")
            y = T.match_buffer(y_handle, (m, layout.n), "float32")
            with T.If(m < tiling.gemm_from):
                with T.Then():
                    (decode or decode_fp32)(layout, tiling, x, weights, y, m)
                with T.Else():
                    _prefill(layout, tiling, x, weights, y, m)
    return ib.get()


def decode_fp32(layout: WeightLayout, tiling: MatmulTiling, x, weights, y, m) -> None:
    rows = tiling.rows
    with T.parallel(0, layout.n // rows) as block:
        # A few hundred bytes: stays a stack array, which LLVM turns into registers.
        acc = T.decl_buffer((rows * LANES,), "float32")
        with T.serial(0, m) as i:
            for r in range(rows):
                T.buffer_store(acc, bcast(const(0.0), LANES), vstore_index(r * LANES, lanes=LANES))
            with T.serial(0, layout.groups) as g:
                xs = [vload(x, i, g * GROUP_SIZE + w * LANES, lanes=LANES) for w in range(WORDS_PER_GROUP)]
                group_sum = tree_sum(xs) if layout.needs_group_sum else None
                for r in range(rows):
                    row = block * rows + r
                    part = tree_sum([layout.raw(weights, row, g * GROUP_SIZE + w * LANES, LANES) * xs[w]
                                     for w in range(WORDS_PER_GROUP)])
                    old = vload(acc, r * LANES, lanes=LANES)
                    new = old + layout.scale_group(weights, row, g, part, group_sum, LANES)
                    T.buffer_store(acc, new, vstore_index(r * LANES, lanes=LANES))
            for r in range(rows):
                total = tree_sum([load(acc, r * LANES + lane) for lane in range(LANES)])
                T.buffer_store(y, total, [i, block * rows + r])


def _prefill(layout: WeightLayout, tiling: MatmulTiling, x, weights, y, m) -> None:
    tile_rows, tokens = tiling.tile_rows, tiling.tile_tokens
    with T.parallel(0, layout.n // tile_rows) as tile:
        # Column-major dequantized tile: w_tile[c * tile_rows + r] = W[tile * tile_rows + r, c].
        w_tile = T.decl_buffer((layout.k * tile_rows,), "float32")
        with T.serial(0, layout.k) as c:
            for r in range(tile_rows):
                T.buffer_store(w_tile, layout.value(weights, tile * tile_rows + r, c), [c * tile_rows + r])
        acc = T.decl_buffer((tokens * tile_rows,), "float32")
        with T.serial(0, m // tokens) as block:
            _micro_kernel(layout, tiling, x, y, w_tile, acc, tile, block * tokens, tokens)
        with T.serial(m // tokens * tokens, m) as i:
            _micro_kernel(layout, tiling, x, y, w_tile, acc, tile, i, 1)


def _micro_kernel(layout: WeightLayout, tiling: MatmulTiling, x, y, w_tile, acc, tile, first_token,
                  tokens: int) -> None:
    """``y[first_token : +tokens, tile rows] = x[...] @ w_tile``, accumulators in registers."""
    tile_rows = tiling.tile_rows
    vectors = tile_rows // LANES
    for a in range(tokens * vectors):
        T.buffer_store(acc, bcast(const(0.0), LANES), vstore_index(a * LANES, lanes=LANES))
    with T.serial(0, layout.k) as c:
        w = [vload(w_tile, c * tile_rows + v * LANES, lanes=LANES) for v in range(vectors)]
        for t in range(tokens):
            xb = bcast(load(x, first_token + t, c), LANES)
            for v in range(vectors):
                a = (t * vectors + v) * LANES
                T.buffer_store(acc, vload(acc, a, lanes=LANES) + xb * w[v], vstore_index(a, lanes=LANES))
    for t in range(tokens):
        for v in range(vectors):
            a = (t * vectors + v) * LANES
            T.buffer_store(y, vload(acc, a, lanes=LANES),
                           vstore_index(first_token + t, tile * tile_rows + v * LANES, lanes=LANES))
