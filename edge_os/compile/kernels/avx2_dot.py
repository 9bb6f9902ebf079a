"""Decode matmul on AVX2 with integer activations and integer dot products.

FP32 FMA needs about one vector instruction per weight byte for int4 (broadcast, shift, mask,
convert, multiply-add per 8 values), which caps a core at 4-6 GB/s. Here the activations are
rounded once per call, per group of 32, to signed integers of ``bits`` bits (scale = max|x| /
(2**(bits-1) - 1)), and each 32-byte load of weights feeds integer multiply-adds:

- ``bits=16`` (near-exact, error ~1.5e-5 of the group maximum): nibbles or bytes are widened to
  int16 (``vpunpck*bw`` / ``vpmovsxbw``) and ``vpmaddwd`` multiplies and adds pairs to int32.
- ``bits=8`` (llama.cpp's method, error ~0.4% of the group maximum): ``vpmaddubsw`` multiplies
  unsigned weights by signed activations into int16 pairs and ``vpmaddwd`` by ones widens them;
  for q8 weights ``vpsignb`` moves the activation's sign onto the weight.

int4 (q4, q4_1, q4_k), 5-bit (q5_0, q5_1, q5_k: the fifth bits ORed into the nibbles' bytes as
0x10) and q6_k (its top two bits ORed in as bits 4-5, its int8 sub-block scales applied in integers,
see ``_q6_k_dots``):
a 32-byte load holds 64 values (two groups, A then B), low nibbles the even
elements and high nibbles the odd ones; the prologue stores each 64-span of activations in the
order the widened nibbles come out, so the int32 result holds group A in lanes 0-3 and B in 4-7
and scales are applied as [A,A,A,A,B,B,B,B]. The group minimum (q4_1, q4_k, q5_1, q5_k) or the
-8 / -16 zero point (q4 / q5_0) multiplies the group's exact float activation sum (a quarter of it
in each of its 4 lanes).
q8 (and q8_m, with a minimum): one group per load, natural order.

The error against float activations is at most half a rounding step of each activation,
max|x_g| / (2**bits - 2) * sum|W_g| per group.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels.vector import (
    bcast,
    const,
    lane_max,
    lane_sum,
    load,
    prefetch,
    to_f32,
    tree_max,
    tree_sum,
    vload,
    vstore_index,
)
from edge_os.compile.kernels.weights import WeightLayout
from edge_os.quantize.formats import GROUP_SIZE

LANES = 8  # float32 / int32 lanes of a 256-bit register
BYTES = 32  # int8 lanes of a 256-bit register
SPAN = 2 * GROUP_SIZE  # int4 values in one 32-byte load
# How far ahead to prefetch weights. Rows are interleaved several at a time, which the hardware
# prefetcher follows poorly; ~8 KB ahead keeps the loads hitting L2 at two threads.
PREFETCH_BYTES = 8192


def supports(layout: WeightLayout) -> bool:
    if layout.fmt.bits in (4, 5, 6):
        return layout.k % SPAN == 0
    return layout.fmt.bits == 8


def decoder(bits: int):
    """The decode path (arguments of ``matmul_fp32.decode_fp32``) for ``bits``-bit activations."""
    if bits not in (8, 16):
        raise ValueError(f"activations of {bits} bits")

    def decode(layout: WeightLayout, tiling, x, weights, y, m) -> None:
        k, groups = layout.k, layout.groups
        xq = T.decl_buffer((m * k,), f"int{bits}")  # rounded activations (int4: in nibble order)
        xd = T.decl_buffer((m * groups,), "float32")  # their scale per group
        xs = T.decl_buffer((m * groups,), "float32")  # int4: a quarter of each group's float sum
        xa = T.decl_buffer((m * k,), "int8") if (bits, layout.fmt.bits) == (8, 8) else None  # |xq|
        _quantize_activations(layout, bits, x, m, xq, xd, xs, xa)
        rows = tiling.rows
        with T.parallel(0, layout.n // rows) as block:
            acc = T.decl_buffer((rows * LANES,), "float32")
            with T.serial(0, m) as i:
                for r in range(rows):
                    T.buffer_store(acc, bcast(const(0.0), LANES), vstore_index(r * LANES, lanes=LANES))
                if layout.fmt.bits != 8:
                    _int4_rows(layout, bits, weights, acc, block * rows, rows, i, xq, xd, xs)
                else:
                    _int8_rows(layout, bits, weights, acc, block * rows, rows, i, xq, xd, xs, xa)
                for r in range(rows):
                    total = tree_sum([load(acc, r * LANES + lane) for lane in range(LANES)])
                    T.buffer_store(y, total, [i, block * rows + r])

    return decode


def _even_slot(bits: int, half, vector: int):
    """Where the 4 even elements of activation vector ``vector`` (8 values) of group ``half``
    (0 or 1) of a 64-span go in that span's layout; the odd ones go 32 further.

    int8: evens then odds of the span (``vpmaddubsw`` takes low and high nibbles whole).
    int16: the evens of 16-value chunk c = 2 * half + vector // 2 land at (c % 2) * 16 +
    (c // 2) * 8, the order in which ``vpunpcklbw``/``vpunpckhbw`` widen bytes 0-7 | 16-23 and
    8-15 | 24-31.
    """
    if bits == 8:
        return half * (GROUP_SIZE // 2) + vector * (LANES // 2)
    return (vector // 2) * 16 + half * 8 + (vector % 2) * 4


def _quantize_activations(layout: WeightLayout, bits: int, x, m, xq, xd, xs, xa) -> None:
    k, groups = layout.k, layout.groups
    top = const(float(2 ** (bits - 1) - 1))
    with T.serial(0, m) as i:
        with T.serial(0, groups) as g:
            v = [vload(x, i, g * GROUP_SIZE + w * LANES, lanes=LANES) for w in range(GROUP_SIZE // LANES)]
            peak = lane_max(tree_max([tirx.max(a, const(0.0) - a) for a in v]), LANES)
            inv = tirx.Select(peak > const(0.0), top / peak, const(0.0))
            T.buffer_store(xd, peak / top, [i * groups + g])
            T.buffer_store(xs, lane_sum(tree_sum(v), LANES) * const(0.25), [i * groups + g])
            for w, a in enumerate(v):
                q = tirx.Cast(f"int{bits}x{LANES}", tirx.round(a * bcast(inv, LANES)))
                if layout.fmt.bits != 8:  # 4-, 5- and 6-bit values: in nibble order
                    base = i * k + (g // 2) * SPAN + _even_slot(bits, g % 2, w)
                    T.buffer_store(xq, tirx.Shuffle([q], [0, 2, 4, 6]), vstore_index(base, lanes=4))
                    T.buffer_store(xq, tirx.Shuffle([q], [1, 3, 5, 7]), vstore_index(base + GROUP_SIZE, lanes=4))
                else:
                    at = i * k + g * GROUP_SIZE + w * LANES
                    T.buffer_store(xq, q, vstore_index(at, lanes=LANES))
                    if xa is not None:
                        T.buffer_store(xa, tirx.Cast(f"int8x{LANES}", tirx.abs(q)), vstore_index(at, lanes=LANES))


def _int4_rows(layout: WeightLayout, bits: int, weights, acc, first_row, rows: int, i, xq, xd, xs) -> None:
    k, groups = layout.k, layout.groups
    nibble_mask = bcast(const(0x0F0F0F0F, "uint32"), LANES)
    with T.serial(0, k // SPAN) as span:
        at = i * k + span * SPAN
        g = i * groups + span * 2
        x_scale = _pair(load(xd, g), load(xd, g + 1))
        x_sum = _pair(load(xs, g), load(xs, g + 1))
        for r in range(rows):
            row = first_row + r
            _prefetch_ahead(layout, weights, row, span * LANES, span * 2)
            words = vload(weights[0], row, span * LANES, lanes=LANES)  # 64 nibbles
            low = tirx.bitwise_and(words, nibble_mask)
            high = tirx.bitwise_and(tirx.shift_right(words, bcast(const(4, "uint32"), LANES)), nibble_mask)
            if layout.fmt.bits == 5:  # OR in the fifth bits: evens' of both groups, then odds'
                a = load(layout.buffer(weights, "qhigh"), row, span * 2)
                b = load(layout.buffer(weights, "qhigh"), row, span * 2 + 1)
                half = const(0xFFFF, "uint32")
                low = tirx.bitwise_or(low, _bit_bytes(tirx.bitwise_or(tirx.bitwise_and(a, half),
                                                                      tirx.shift_left(b, const(16, "uint32")))))
                high = tirx.bitwise_or(high, _bit_bytes(tirx.bitwise_or(
                    tirx.shift_right(a, const(16, "uint32")), tirx.bitwise_and(b, const(0xFFFF0000, "uint32")))))
            if layout.fmt.name == "q6_k":
                low, high = _q6_k_highs(layout, weights, row, span, low, high)
                dots = _q6_k_dots(layout, bits, weights, row, span, low, high, xq, at)
            elif bits == 8:
                evens, odds = vload(xq, at, lanes=BYTES), vload(xq, at + BYTES, lanes=BYTES)
                pairs = (_pmaddubsw(tirx.reinterpret("int8x32", low), evens)
                         + _pmaddubsw(tirx.reinterpret("int8x32", high), odds))
                dots = _pmaddwd(pairs, bcast(const(1, "int16"), 16))
            else:
                widened = [_widen_nibbles(v, upper) for v in (low, high) for upper in (False, True)]
                dots = tree_sum([_pmaddwd(w, vload(xq, at + 16 * j, lanes=16)) for j, w in enumerate(widened)])
            dots = to_f32(dots, LANES)
            scale = layout.pair_scales(weights, row, span * 2)
            if layout.fmt.name == "q6_k":  # W = d * (sc * (q - 32)), the bracket in the integer dots
                term = dots * (scale * x_scale)
            elif layout.fmt.asymmetric:  # W = scale*q + minimum
                minimum = layout.pair_minimums(weights, row, span * 2)
                term = dots * (scale * x_scale) + minimum * x_sum
            else:  # W = scale*(q - 8), or (q - 16) for q5_0
                term = (dots * x_scale - x_sum * bcast(const(layout.zero_point), LANES)) * scale
            old = vload(acc, r * LANES, lanes=LANES)
            T.buffer_store(acc, old + term, vstore_index(r * LANES, lanes=LANES))


def _int8_rows(layout: WeightLayout, bits: int, weights, acc, first_row, rows: int, i, xq, xd, xs, xa) -> None:
    k, groups = layout.k, layout.groups
    with T.serial(0, groups) as g:
        at = i * k + g * GROUP_SIZE
        x_scale = load(xd, i * groups + g)
        for r in range(rows):
            row = first_row + r
            _prefetch_ahead(layout, weights, row, g * GROUP_SIZE, g)
            w = vload(weights[0], row, g * GROUP_SIZE, lanes=BYTES)
            if bits == 8:
                signs, magnitudes = vload(xq, at, lanes=BYTES), vload(xa, at, lanes=BYTES)
                dots = _pmaddwd(_pmaddubsw(magnitudes, _psignb(w, signs)), bcast(const(1, "int16"), 16))
            else:
                halves = [tirx.Cast("int16x16", tirx.Shuffle([w], list(range(h * 16, h * 16 + 16)))) for h in range(2)]
                dots = _pmaddwd(halves[0], vload(xq, at, lanes=16)) + _pmaddwd(halves[1], vload(xq, at + 16, lanes=16))
            scale = bcast(layout.group_scale(weights, row, g) * x_scale, LANES)
            term = to_f32(dots, LANES) * scale
            if layout.fmt.asymmetric:  # q8_m: + minimum * the group's sum, an eighth of it in each lane
                eighth = layout.group_minimum(weights, row, g) * load(xs, i * groups + g) * const(0.5)
                term = term + bcast(eighth, LANES)
            old = vload(acc, r * LANES, lanes=LANES)
            T.buffer_store(acc, old + term, vstore_index(r * LANES, lanes=LANES))


def _q6_k_highs(layout: WeightLayout, weights, row, span, low, high):
    """q6_k: OR the top two bits of each value into its nibble's byte as bits 4-5.

    The span's 64 pairs of bits are 4 ``qhigh`` words; nibble b of them (byte b // 2, low nibble
    first) holds those of elements 2b (bits 0-1) and 2b+1 (bits 2-3), the values in byte b of
    ``low`` and of ``high``. The 32 nibbles are spread one to a byte, then shifted into place.
    """
    words = vload(layout.buffer(weights, "qhigh"), row, span * 4, lanes=4)
    nibble_mask = bcast(const(0x0F0F0F0F, "uint32"), 4)
    first = tirx.reinterpret("uint8x16", tirx.bitwise_and(words, nibble_mask))
    second = tirx.reinterpret("uint8x16", tirx.bitwise_and(tirx.shift_right(words, bcast(const(4, "uint32"), 4)),
                                                          nibble_mask))
    spread = tirx.reinterpret("uint32x8", tirx.Shuffle([first, second], [b // 2 + 16 * (b % 2) for b in range(BYTES)]))
    top = bcast(const(0x30303030, "uint32"), LANES)
    low = tirx.bitwise_or(low, tirx.bitwise_and(tirx.shift_left(spread, bcast(const(4, "uint32"), LANES)), top))
    high = tirx.bitwise_or(high, tirx.bitwise_and(tirx.shift_left(spread, bcast(const(2, "uint32"), LANES)), top))
    return low, high


def _q6_k_dots(layout: WeightLayout, bits: int, weights, row, span, low, high, xq, at):
    """int32x8 of a span's ``sum sc * (q - 32) * x``: group A in lanes 0-3, B in 4-7.

    The span has 4 sub-blocks of 16 values, each with its int8 scale ``sc``, applied in integers.
    int8: ``vpmaddubsw`` of the unsigned 6-bit values, less the same of 32 (the pair sums of
    ``(q - 32) * x`` fit int16: |.| <= 4 * 32 * 127), then ``vpmaddwd`` by ``sc``: int16 lane j
    holds elements 4j..4j+3, sub-block j // 4. int16: the widened values less 32, times ``sc``
    (|.| <= 32 * 128) with ``vpmullw``, then ``vpmaddwd`` (|sum| <= 8 * 4096 * 32767 < 2**31).
    """
    sc = tirx.Cast("int16x4", vload(layout.buffer(weights, "sc"), row, span * 4, lanes=4))
    if bits == 8:
        evens, odds = vload(xq, at, lanes=BYTES), vload(xq, at + BYTES, lanes=BYTES)
        thirty_two = bcast(const(32, "int8"), BYTES)
        pairs = (_pmaddubsw(tirx.reinterpret("int8x32", low), evens)
                 + _pmaddubsw(tirx.reinterpret("int8x32", high), odds))
        offsets = _pmaddubsw(thirty_two, evens) + _pmaddubsw(thirty_two, odds)
        return _pmaddwd(pairs - offsets, tirx.Shuffle([sc] * 4, [j // 4 for j in range(16)]))
    dots = []
    for j, (v, upper) in enumerate((v, upper) for v in (low, high) for upper in (False, True)):
        # int16 lane l of the widened bytes is element 2 * byte (+1): sub-block (2 if l >= 8) + upper
        sub_scales = tirx.Shuffle([sc] * 4, [(2 if lane >= 8 else 0) + int(upper) for lane in range(16)])
        centred = _widen_nibbles(v, upper) - bcast(const(32, "int16"), 16)
        dots.append(_pmaddwd(centred * sub_scales, vload(xq, at + 16 * j, lanes=16)))
    return tree_sum(dots)


def _widen_nibbles(nibbles, upper: bool):
    """int16x16 from bytes 0-7 and 16-23 (or 8-15 and 24-31) of a 32-byte vector of nibbles:
    ``vpunpcklbw`` / ``vpunpckhbw`` against zero, which work within each 128-bit half."""
    data = tirx.reinterpret("uint8x32", nibbles)
    zero = bcast(const(0, "uint8"), BYTES)
    first = 8 if upper else 0
    order = []
    for k in range(16):
        byte = 16 * (k // 8) + first + k % 8
        order += [byte, BYTES + byte]
    return tirx.reinterpret("int16x16", tirx.Shuffle([data, zero], order))


def _bit_bytes(word):
    """uint32x8 whose byte b is 0x10 when bit b of the uint32 ``word`` is set, else 0 (each byte
    of the word spread over 8 lanes, masked by its own bit, compared)."""
    data = tirx.reinterpret("uint8x32", bcast(word, LANES))
    spread = tirx.Shuffle([data], [b // 8 for b in range(BYTES)])
    bit = tirx.reinterpret("uint8x32", bcast(const(0x8040201008040201, "uint64"), 4))
    zero = bcast(const(0, "uint8"), BYTES)
    fifth = tirx.Select(tirx.bitwise_and(spread, bit) != zero, bcast(const(0x10, "uint8"), BYTES), zero)
    return tirx.reinterpret("uint32x8", fifth)


def _pmaddubsw(unsigned, signed):
    return tirx.call_llvm_pure_intrin("int16x16", "llvm.x86.avx2.pmadd.ub.sw", unsigned, signed)


def _pmaddwd(a, b):
    return tirx.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd", a, b)


def _psignb(values, signs):
    return tirx.call_llvm_pure_intrin("int8x32", "llvm.x86.avx2.psign.b", values, signs)


def _pair(a, b):
    """[a, a, a, a, b, b, b, b]: one scale per group for the lanes that group's sums occupy."""
    return tirx.Shuffle([bcast(a, 4), bcast(b, 4)], list(range(LANES)))


def _prefetch_ahead(layout: WeightLayout, weights, row, column, group) -> None:
    """Prefetch the same columns ``PREFETCH_BYTES`` further down the weight stream."""
    ahead = max(1, PREFETCH_BYTES // layout.row_bytes())
    T.evaluate(prefetch(weights[0], row + ahead, column))
    for extra in weights[1:]:
        per_group = int(extra.shape[1]) // layout.groups  # q6_k: 2 per group; K-quant super-block ones are few
        if per_group:
            T.evaluate(prefetch(extra, row + ahead, group * per_group))
