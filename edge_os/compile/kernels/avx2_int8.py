"""Decode matmul on AVX2 with int8 activations and integer dot products.

FP32 FMA needs about one vector instruction per weight byte for int4 (broadcast, shift, mask,
convert, multiply-add per 8 values) and cannot keep up with memory on two cores. Here the
activations are rounded to int8 once per call (per group of 32: scale = max|x| / 127) and each
32-byte load of weights is consumed by ``vpmaddubsw`` (unsigned int8 x signed int8 -> pairwise
int16 sums) and ``vpmaddwd`` (-> int32): about a dozen instructions for 64 int4 values.

- int4 (q4, q4_1): a 32-byte load holds 64 values (two groups); its low nibbles are the even
  elements and its high nibbles the odd ones, so the prologue stores each 64-span of activations
  as 32 even then 32 odd values. The int32 result has groups A and B in lanes 0-3 and 4-7, so
  scales are applied as [A,A,A,A,B,B,B,B] vectors. The group minimum (q4_1) or the -8 zero point
  (q4) multiplies the group's exact float activation sum (a quarter of it in each of 4 lanes).
- q8: ``vpmaddubsw`` needs one unsigned operand, so it gets |x| and the weights take x's sign
  (``vpsignb``).

The error against float activations is at most max|x_g| / 254 * sum|W_g| per group (the
rounding of each activation), as in llama.cpp's AVX2 path.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels.vector import bcast, const, load, prefetch, to_f32, tree_sum, vload, vstore_index
from edge_os.compile.kernels.weights import WeightLayout
from edge_os.quantize.formats import GROUP_SIZE

LANES = 8  # float32 / int32 lanes of a 256-bit register
BYTES = 32  # int8 lanes of a 256-bit register
SPAN = 2 * GROUP_SIZE  # int4 values in one 32-byte load
# How far ahead to prefetch weights. Rows are interleaved several at a time, which the hardware
# prefetcher follows poorly; ~8 KB ahead keeps the loads hitting L2 at two threads.
PREFETCH_BYTES = 8192


def supports(layout: WeightLayout) -> bool:
    if layout.fmt.bits == 4:
        return layout.k % SPAN == 0
    return layout.fmt.bits == 8


def _pmaddubsw(unsigned, signed):
    return tirx.call_llvm_pure_intrin("int16x16", "llvm.x86.avx2.pmadd.ub.sw", unsigned, signed)


def _pmaddwd_ones(pairs):
    ones = bcast(const(1, "int16"), 16)
    return tirx.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd", pairs, ones)


def _psignb(values, signs):
    return tirx.call_llvm_pure_intrin("int8x32", "llvm.x86.avx2.psign.b", values, signs)


def _pair(a, b):
    """[a, a, a, a, b, b, b, b]: one scale per group for the lanes that group's sums occupy."""
    return tirx.Shuffle([bcast(a, 4), bcast(b, 4)], list(range(LANES)))


def _lane(vector, lane: int):
    return tirx.Shuffle([vector], [lane])


def decode(layout: WeightLayout, tiling, x, weights, y, m) -> None:
    """The decode path for ``matmul_fp32.build_matmul``: activation prologue, then row blocks."""
    k, groups = layout.k, layout.groups
    xq = T.decl_buffer((m * k,), "int8")  # rounded activations (int4: even/odd per 64-span)
    xd = T.decl_buffer((m * groups,), "float32")  # their scale per group
    xs = T.decl_buffer((m * groups,), "float32")  # int4: a quarter of each group's float sum
    xa = T.decl_buffer((m * k,), "int8") if layout.fmt.bits == 8 else None  # q8: |xq|
    _quantize_activations(layout, x, m, xq, xd, xs, xa)
    rows = tiling.rows
    with T.parallel(0, layout.n // rows) as block:
        acc = T.decl_buffer((rows * LANES,), "float32")
        with T.serial(0, m) as i:
            for r in range(rows):
                T.buffer_store(acc, bcast(const(0.0), LANES), vstore_index(r * LANES, lanes=LANES))
            if layout.fmt.bits == 4:
                _int4_rows(layout, weights, acc, block * rows, rows, i, xq, xd, xs)
            else:
                _int8_rows(layout, weights, acc, block * rows, rows, i, xq, xd, xa)
            for r in range(rows):
                total = tree_sum([load(acc, r * LANES + lane) for lane in range(LANES)])
                T.buffer_store(y, total, [i, block * rows + r])


def _quantize_activations(layout: WeightLayout, x, m, xq, xd, xs, xa) -> None:
    k, groups = layout.k, layout.groups
    with T.serial(0, m) as i:
        with T.serial(0, groups) as g:
            v = [vload(x, i, g * GROUP_SIZE + w * LANES, lanes=LANES) for w in range(GROUP_SIZE // LANES)]
            peak = _hmax(_tree_max([tirx.max(a, const(0.0) - a) for a in v]))
            inv = tirx.Select(peak > const(0.0), const(127.0) / peak, const(0.0))
            T.buffer_store(xd, peak / const(127.0), [i * groups + g])
            T.buffer_store(xs, _hsum(tree_sum(v)) * const(0.25), [i * groups + g])
            for w, a in enumerate(v):
                q = tirx.Cast(f"int8x{LANES}", tirx.round(a * bcast(inv, LANES)))
                if layout.fmt.bits == 4:
                    # element e of the 64-span starting at g//2*64 -> even: e/2, odd: 32 + e/2
                    base = i * k + (g // 2) * SPAN + (g % 2) * (GROUP_SIZE // 2) + w * (LANES // 2)
                    T.buffer_store(xq, tirx.Shuffle([q], [0, 2, 4, 6]), vstore_index(base, lanes=4))
                    T.buffer_store(xq, tirx.Shuffle([q], [1, 3, 5, 7]), vstore_index(base + GROUP_SIZE, lanes=4))
                else:
                    at = i * k + g * GROUP_SIZE + w * LANES
                    T.buffer_store(xq, q, vstore_index(at, lanes=LANES))
                    T.buffer_store(xa, tirx.Cast(f"int8x{LANES}", tirx.abs(q)), vstore_index(at, lanes=LANES))


def _int4_rows(layout: WeightLayout, weights, acc, first_row, rows: int, i, xq, xd, xs) -> None:
    k, groups = layout.k, layout.groups
    nibble_mask = bcast(const(0x0F0F0F0F, "uint32"), LANES)
    with T.serial(0, k // SPAN) as span:
        at = i * k + span * SPAN
        evens, odds = vload(xq, at, lanes=BYTES), vload(xq, at + BYTES, lanes=BYTES)
        g = i * groups + span * 2
        x_scale = _pair(load(xd, g), load(xd, g + 1))
        x_sum = _pair(load(xs, g), load(xs, g + 1))
        for r in range(rows):
            row = first_row + r
            _prefetch_ahead(layout, weights, row, span * LANES, span * 2)
            words = vload(weights[0], row, span * LANES, lanes=LANES)  # 64 nibbles
            low = tirx.reinterpret("int8x32", tirx.bitwise_and(words, nibble_mask))
            high = tirx.reinterpret("int8x32", tirx.bitwise_and(tirx.shift_right(words, bcast(const(4, "uint32"), LANES)), nibble_mask))
            dots = to_f32(_pmaddwd_ones(_pmaddubsw(low, evens) + _pmaddubsw(high, odds)), LANES)
            scale = _pair(to_f32(load(weights[1], row, span * 2)), to_f32(load(weights[1], row, span * 2 + 1)))
            if layout.fmt.asymmetric:  # W = scale*q + minimum
                minimum = _pair(to_f32(load(weights[2], row, span * 2)), to_f32(load(weights[2], row, span * 2 + 1)))
                term = dots * (scale * x_scale) + minimum * x_sum
            else:  # W = scale*(q - 8)
                term = (dots * x_scale - x_sum * bcast(const(8.0), LANES)) * scale
            old = vload(acc, r * LANES, lanes=LANES)
            T.buffer_store(acc, old + term, vstore_index(r * LANES, lanes=LANES))


def _int8_rows(layout: WeightLayout, weights, acc, first_row, rows: int, i, xq, xd, xa) -> None:
    k, groups = layout.k, layout.groups
    with T.serial(0, groups) as g:
        at = i * k + g * GROUP_SIZE
        signs, magnitudes = vload(xq, at, lanes=BYTES), vload(xa, at, lanes=BYTES)
        x_scale = load(xd, i * groups + g)
        for r in range(rows):
            row = first_row + r
            _prefetch_ahead(layout, weights, row, g * GROUP_SIZE, g)
            w = vload(weights[0], row, g * GROUP_SIZE, lanes=BYTES)
            dots = to_f32(_pmaddwd_ones(_pmaddubsw(magnitudes, _psignb(w, signs))), LANES)
            scale = bcast(to_f32(load(weights[1], row, g)) * x_scale, LANES)
            old = vload(acc, r * LANES, lanes=LANES)
            T.buffer_store(acc, old + dots * scale, vstore_index(r * LANES, lanes=LANES))


def _prefetch_ahead(layout: WeightLayout, weights, row, column, group) -> None:
    """Prefetch the same columns ``PREFETCH_BYTES`` further down the weight stream."""
    ahead = max(1, PREFETCH_BYTES // layout.row_bytes())
    T.evaluate(prefetch(weights[0], row + ahead, column))
    for extra in weights[1:]:
        T.evaluate(prefetch(extra, row + ahead, group))


def _tree_max(values):
    while len(values) > 1:
        values = [tirx.max(values[j], values[j + 1]) if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]


def _hmax(vector):
    return _tree_max([_lane(vector, lane) for lane in range(LANES)])


def _hsum(vector):
    return tree_sum([_lane(vector, lane) for lane in range(LANES)])
