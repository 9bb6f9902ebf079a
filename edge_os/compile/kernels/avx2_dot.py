"""Decode matmul on AVX2 with integer activations and integer dot products.

FP32 FMA needs about one vector instruction per weight byte for int4 (broadcast, shift, mask,
convert, multiply-add per 8 values), which caps a core at 4-6 GB/s. Here the activations are
rounded once per call, per group of 32, to signed integers of ``bits`` bits (scale = max|x| /
(2**(bits-1) - 1)), and each 32-byte load of weights feeds integer multiply-adds:

- ``bits=16`` (near-exact, error ~1.5e-5 of the group maximum): nibbles or bytes are widened to
  int16 (``vpunpck*bw`` / ``vpmovsxbw``) and ``vpmaddwd`` multiplies and adds pairs to int32.
- ``bits=8`` (llama.cpp's method, error ~0.4% of the group maximum): ``vpmaddubsw`` multiplies
  unsigned weights by signed activations into int16 pairs and ``vpmaddwd`` by ones widens them
  (with VNNI one ``vpdpbusd`` does both, to the same integers); for q8 weights ``vpsignb`` moves
  the activation's sign onto the weight.

int4 (q4, q4_1, q4_k), 5-bit (q5_0, q5_1, q5_k: the fifth bits ORed into the nibbles' bytes as
0x10) and q6_k (its top two bits ORed in as bits 4-5, its int8 sub-block scales applied in integers,
see ``_q6_k_dots``):
a 32-byte load holds 64 values (two groups, A then B), low nibbles the even
elements and high nibbles the odd ones; the prologue stores each 64-span of activations in the
order the widened nibbles come out, so the int32 result holds group A in lanes 0-3 and B in 4-7.
A task owns 4 weight rows; two rounds of ``vphaddd`` sum the 4 rows' results into one vector
[r0 A, r1 A, r2 A, r3 A, r0 B, .., r3 B], so one conversion to float and one scaling serve 4 rows
(each row used to convert and scale its own 8 lanes; one-row int4 matmuls are 12-15% faster for
it on Zen 1, docs/performance.md). The group minimum (q4_1, q4_k, q5_1, q5_k) or the -8 / -16
zero point (q4 / q5_0) multiplies the group's sum of rounded activations (``vector.rounded_sum``).
q8 (and q8_m, with a minimum): one group per load, natural order; the 4 rows are summed the same
way, row r's total then in lanes r and 4 + r.

Batches (calls of 2 to ``gemm_from - 1`` rows: a decode step of several sequences, a prefill
chunk): each span (q8: group) of the 4 weight rows is unpacked (q8: widened to int16) into
registers once per part of the activation rows and applied to every row of the part (its
activations loaded once for the 4 rows, their dots combined in registers), so a part of m rows
costs one unpacking plus m dot products instead of m of both. With AVX-512's 32 vector registers
a part is ``UNROLLED_ROWS`` rows written out one after another, their accumulators in registers;
with AVX2's 16 it is up to ``PART_ROWS`` rows in a loop, their accumulators in L1. A row's
arithmetic is the same in every case, so its result does not depend on the batch it came in.

AVX-512BW targets (``wide``; Zen 4 and 5, Intel Xeon since Skylake-SP) with int16 activations: int4
weights take two spans per 512-bit register (a 64-byte load widens to both spans' values side by
side, since the unpacks work within 128-bit lanes; the 4 rows' sums are combined by shuffles, as
AVX-512 has no horizontal add), so a span costs half the dot product instructions; the prologue
interleaves the two spans' activations by 16-value chunk, so one 512-bit load holds what one
``vpmaddwd`` needs. Symmetric q8 takes four groups at a time: a row's 128 bytes reordered by 8-byte
chunk (``vpermt2q``) so that each 128-bit lane of the products holds one group, and the
activations stored in that order, so the 4 rows' sums of 4 groups share one conversion and
scaling (one group per ``vpmaddwd`` needed a 16-lane reduction per group and row: the LM head of
SmolLM2 at 4 rows 1.27 -> 0.80 ms on Zen 5); the groups past the last four, and q8_m, go one at a
time. With VNNI, LLVM fuses each ``vpmaddwd`` and the addition after it into ``vpdpwssd``.
With int8 activations and AVX512-VNNI, int4 spans go two at a time too: a 64-byte load's low and
high nibbles against the two spans' even and odd activations (stored [evens of both | odds of
both]), one 512-bit ``vpdpbusd`` each. Results equal the 256-bit path's to float rounding (the two
spans' or the four groups' terms are added before the accumulator, not after).

The error against float activations is at most half a rounding step of each activation,
max|x_g| / (2**bits - 2) * sum|W_g| per group.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import tirx
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels.vector import (
    bcast,
    const,
    lane_max,
    load,
    prefetch,
    rounded_sum,
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
# prefetcher follows poorly; ~8 KB ahead keeps the loads hitting L2 at two threads. Into L2 only
# (``prefetcht1``): a prefetch into L1 holds one of the core's L1 miss buffers until its line
# arrives from DRAM, and those capped one core's weight stream at ~9 GB/s on a 2.2 GHz Zen 4
# (the LM head alone; 21-24 GB/s into L2, the core's plain read 24 GB/s); the 121 matmuls of a
# SmolLM2 step at 2 threads 5.6-5.9 -> 3.6-3.8 ms.
PREFETCH_BYTES = 8192


def supports(layout: WeightLayout) -> bool:
    if layout.fmt.bits in (4, 5, 6):
        return layout.k % SPAN == 0
    return layout.fmt.bits == 8


def decoder(bits: int, wide: bool = False, vnni: bool = False):
    """The decode path (arguments of ``matmul_fp32.decode_fp32``) for ``bits``-bit activations.

    Each task owns ``ROWS`` weight rows. One activation row (single-stream decode) keeps its
    accumulator in registers. Several rows (batched decode, prefill chunks): each block of weights is
    loaded and unpacked into registers once per part of the rows and applied to each row of the
    part (see ``_batch``). Every row goes through the same arithmetic, so a row's result does not
    depend on the batch it came in.
    ``wide``: the target has AVX-512BW; with int16 activations, int4 weights then take two spans
    per 512-bit register (``_spans``) and q8 a group per ``vpmaddwd`` (``_int8_rows``); with either
    activations, a batch's parts are unrolled (32 vector registers hold their accumulators).
    ``vnni``: the target has ``vpdpbusd`` (AVX512-VNNI with VL, or AVX-VNNI); int8 activations'
    products and their sums into int32 are then one instruction per 32 bytes (``_int8_dots``), and
    with ``wide`` (AVX512-VNNI) int4 weights take two spans per 512-bit register as with int16.
    """
    if bits not in (8, 16):
        raise ValueError(f"activations of {bits} bits")
    unrolled = wide
    wide = wide and (bits == 16 or vnni)  # int8 in 512-bit registers needs 512-bit vpdpbusd

    def decode(layout: WeightLayout, tiling, x, weights, y, m) -> None:
        if tiling.rows != ROWS:
            raise ValueError(f"the integer decode path runs {ROWS} weight rows per task, not {tiling.rows}")
        k, groups = layout.k, layout.groups
        int4 = layout.fmt.bits != 8
        xq = T.decl_buffer((m * k,), f"int{bits}")  # rounded activations (int4: in nibble order)
        # the group's scale x4 (``_group_lanes``): int4's [scale A x4, scale B x4] per span and q8
        # quads' [g0 x4 .. g3 x4] are one vector load each
        xd = T.decl_buffer((m * groups * GROUP_LANES,), "float32")
        # int4: the group sums, paired as the scales; q8_m: half the group's sum x8 (row r's lanes: r, 4 + r)
        xs = (T.decl_buffer((m * groups * LANES // 2,), "float32") if int4
              else T.decl_buffer((m * groups * LANES,), "float32") if layout.fmt.asymmetric else None)
        xa = T.decl_buffer((m * k,), "int8") if (bits, layout.fmt.bits) == (8, 8) else None  # |xq|
        _quantize_activations(layout, bits, x, m, xq, xd, xs, xa, _paired_spans(layout, wide),
                              _quads(layout, bits, wide))
        with T.If(m == 1):
            with T.Then():
                _batch(layout, bits, weights, y, None, False, xq, xd, xs, xa, wide, vnni)
            with T.Else():
                _batch(layout, bits, weights, y, m, unrolled, xq, xd, xs, xa, wide, vnni)

    return decode


# Weight rows per task: ``_combine`` sums 4 rows' dot products into one vector. (With several
# activation rows, a row's unpacked weights stay in registers during the loop over them; measured
# before the combined sums: 4 and 2 rows alike, 1 slower.)
ROWS = 4
# Activation rows per part of a batch in a loop (``_batch``, AVX2): their accumulators and, per
# span, their activations stay in L1 while a block's unpacked weights are applied to them.
PART_ROWS = 16
# Activation rows per unrolled part (AVX-512). On Zen 5, 121 matmuls of SmolLM2-135M with int16
# activations, against parts of 16 in a loop: 4 rows 4.3 ms (was 5.2), 8 rows 8.5 (9.7), 64 rows
# 66 (73); parts of 8 were no faster. Compiled for AVX2 (16 registers), 4 rows were no faster and
# 64 rows 7% slower, so AVX2 keeps the loop.
UNROLLED_ROWS = 4
# q8 groups per pass on AVX-512 (``_q8_quad``): one per 128-bit lane.
QUAD = 4
# Lanes per group of an activation row's scales (and int4's sums): a span's two groups, or a q8
# quad's four, are then one vector load.
GROUP_LANES = LANES // 2


def _group_lanes(layout: WeightLayout, i, g):
    """Where group ``g`` of activation row ``i`` starts in the scales (and int4's sums)."""
    return (i * layout.groups + g) * GROUP_LANES


def _batch(layout, bits, weights, y, m, unrolled: bool, xq, xd, xs, xa, wide: bool, vnni: bool) -> None:
    """``y = x @ W.T`` with ``ROWS`` weight rows per task, for activation rows 0..m-1 (``m``
    None: row 0 alone, its accumulators in registers). The block's weights are unpacked again for
    each part of the rows, from L1:

    - ``unrolled``: parts of ``UNROLLED_ROWS`` rows and a last one of the rest, each row written
      out, their accumulators in registers;
    - otherwise parts of up to ``PART_ROWS`` rows in a loop, their accumulators in a stack array (L1).
    """
    with T.parallel(0, layout.n // ROWS) as block:
        def part(rows) -> None:
            _block(layout, bits, weights, y, block * ROWS, rows, xq, xd, xs, xa, wide, vnni)

        if m is None:
            part([0])
        elif unrolled:
            with T.serial(0, m // UNROLLED_ROWS) as whole:
                part([whole * UNROLLED_ROWS + j for j in range(UNROLLED_ROWS)])
            for rest in range(1, UNROLLED_ROWS):
                with T.If(m % UNROLLED_ROWS == rest):
                    with T.Then():
                        part([m - rest + j for j in range(rest)])
        else:
            with T.serial(0, (m + PART_ROWS - 1) // PART_ROWS) as looped:
                part(_Rows(looped * PART_ROWS, tirx.min(PART_ROWS, m - looped * PART_ROWS), PART_ROWS))


def _block(layout, bits, weights, y, first_row, batch, xq, xd, xs, xa, wide: bool, vnni: bool) -> None:
    most = len(batch) if isinstance(batch, list) else batch.most
    # acc[slot * LANES]: the 4 weight rows' sums for activation row ``slot``, row r's in lanes r and 4 + r
    acc = T.decl_buffer((most * LANES,), "float32")
    _each(batch, lambda slot, i: T.buffer_store(acc, bcast(const(0.0), LANES), vstore_index(slot * LANES, lanes=LANES)))
    if layout.fmt.bits != 8:
        _int4_rows(layout, bits, weights, acc, first_row, batch, xq, xd, xs, wide, vnni)
    else:
        _int8_rows(layout, bits, weights, acc, first_row, batch, xq, xd, xs, xa, wide, vnni)

    def store(slot, i):
        for r in range(ROWS):
            T.buffer_store(y, load(acc, slot * LANES + r) + load(acc, slot * LANES + ROWS + r), [i, first_row + r])
    _each(batch, store)


@dataclass(frozen=True)
class _Rows:
    """Activation rows ``first .. first + count - 1``, ``count`` at most ``most``."""

    first: tirx.PrimExpr
    count: tirx.PrimExpr
    most: int


def _each(batch, body) -> None:
    """``body(slot, i)`` for each activation row i: unrolled over a list of rows (slot = its
    position; a row may be an expression), or a loop over ``_Rows`` (slot = i - first)."""
    if isinstance(batch, list):
        for slot, i in enumerate(batch):
            body(slot, i)
    else:
        with T.serial(0, batch.count) as slot:
            body(slot, batch.first + slot)


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


def _paired_spans(layout: WeightLayout, wide: bool) -> int:
    """How many leading spans ``_int4_rows`` takes two at a time (0 unless ``wide`` with 4-bit weights)."""
    if not wide or layout.fmt.bits != 4:
        return 0
    return layout.k // SPAN // 2 * 2


def _part_positions(span, paired_spans: int, part: int):
    """Where part 0 of ``span``'s activations starts in its row, and how far apart its parts of
    ``part`` values are: int16's 16-value chunks (4 a span), int8's 32 evens then 32 odds. Spans
    taken in pairs (``_paired_spans``) have their parts interleaved, [a0 b0 a1 b1 ..], so one
    512-bit load holds part n of both; the others are whole."""
    if not paired_spans:
        return span * SPAN, part
    inside = span < paired_spans
    return (tirx.Select(inside, (span // 2) * (2 * SPAN) + (span % 2) * part, span * SPAN),
            tirx.Select(inside, 2 * part, part))


def _quads(layout: WeightLayout, bits: int, wide: bool) -> int:
    """How many leading groups ``_int8_rows`` takes four at a time (0 unless ``wide`` with symmetric
    q8 and int16 activations)."""
    if not wide or bits != 16 or layout.fmt.bits != 8 or layout.fmt.asymmetric:
        return 0
    return layout.groups // QUAD * QUAD


def _quad_position(quad, group: int, vector: int):
    """Where activation vector ``vector`` (8 values) of group ``group`` (0-3) of ``quad`` goes in
    its row: the quad's 128 values as 4 chunks of 32, chunk n holding values 8n..8n+7 of each
    group in turn, the order of ``_q8_quad``'s weights (each 128-bit lane one group)."""
    return quad * QUAD * GROUP_SIZE + vector * QUAD * LANES + group * LANES


# The quad's weights in the activations' order: byte p of the reordered 128 comes from _QUAD_ORDER[p].
_QUAD_ORDER = [0] * (QUAD * GROUP_SIZE)
for _group in range(QUAD):
    for _vector in range(GROUP_SIZE // LANES):
        for _e in range(LANES):
            _QUAD_ORDER[_quad_position(0, _group, _vector) + _e] = _group * GROUP_SIZE + _vector * LANES + _e


def _quantize_activations(layout: WeightLayout, bits: int, x, m, xq, xd, xs, xa, paired_spans: int,
                          quads: int) -> None:
    k, groups = layout.k, layout.groups
    int4 = layout.fmt.bits != 8
    top = const(float(2 ** (bits - 1) - 1))
    with T.serial(0, m) as i:
        with T.serial(0, groups) as g:
            # Bound: an expression is evaluated where it is used, and the stores between its uses
            # keep LLVM from merging them (the group's maximum was found 5 times, its inverse 4).
            v = [T.bind(vload(x, i, g * GROUP_SIZE + w * LANES, lanes=LANES)) for w in range(GROUP_SIZE // LANES)]
            peak = T.bind(lane_max(tree_max([tirx.max(a, const(0.0) - a) for a in v]), LANES))
            inv = T.bind(tirx.Select(peak > const(0.0), top / peak, const(0.0)))
            rounded = [T.bind(tirx.round(a * bcast(inv, LANES))) for a in v]
            at = _group_lanes(layout, i, g)
            x_step = T.bind(peak / top)
            T.buffer_store(xd, bcast(x_step, GROUP_LANES), vstore_index(at, lanes=GROUP_LANES))
            # The sum of the rounded activations, not of x: the zero point's or minimum's term then
            # matches the integer dot product it corrects (see vector.rounded_sum).
            if int4:  # lanes 0-3 of the span's vector for group A, 4-7 for B
                T.buffer_store(xs, bcast(rounded_sum(rounded, x_step, LANES), GROUP_LANES),
                               vstore_index(at, lanes=GROUP_LANES))
            elif xs is not None:  # q8_m: its minimum times the group's sum, half in each of a row's 2 lanes
                T.buffer_store(xs, bcast(rounded_sum(rounded, x_step, LANES) * const(0.5), LANES),
                               vstore_index((i * groups + g) * LANES, lanes=LANES))
            for w, r in enumerate(rounded):
                q = tirx.Cast(f"int{bits}x{LANES}", r)
                if int4 and bits == 16:  # chunk n of the evens, n + 2 of the odds (see _even_slot)
                    start, step = _part_positions(g // 2, paired_spans, 16)
                    slot = _even_slot(bits, g % 2, w)  # < 32: chunk slot // 16, offset slot % 16
                    base = i * k + start + (w // 2) * step + (slot - (w // 2) * 16)
                    T.buffer_store(xq, tirx.Shuffle([q], [0, 2, 4, 6]), vstore_index(base, lanes=4))
                    T.buffer_store(xq, tirx.Shuffle([q], [1, 3, 5, 7]), vstore_index(base + 2 * step, lanes=4))
                elif int4:  # int8 activations of 4-, 5- and 6-bit weights: evens, then odds of the span
                    start, odds = _part_positions(g // 2, paired_spans, GROUP_SIZE)
                    base = i * k + start + _even_slot(bits, g % 2, w)
                    T.buffer_store(xq, tirx.Shuffle([q], [0, 2, 4, 6]), vstore_index(base, lanes=4))
                    T.buffer_store(xq, tirx.Shuffle([q], [1, 3, 5, 7]), vstore_index(base + odds, lanes=4))
                else:
                    at = i * k + g * GROUP_SIZE + w * LANES
                    if quads:
                        at = tirx.Select(g < quads, i * k + _quad_position(g // QUAD, g % QUAD, w), at)
                    T.buffer_store(xq, q, vstore_index(at, lanes=LANES))
                    if xa is not None:
                        T.buffer_store(xa, tirx.Cast(f"int8x{LANES}", tirx.abs(q)), vstore_index(at, lanes=LANES))


def _int4_rows(layout: WeightLayout, bits: int, weights, acc, first_row, batch, xq, xd, xs, wide: bool,
               vnni: bool) -> None:
    """Each span of the ``ROWS`` (4) weight rows unpacked once, applied to every activation row;
    ``wide`` (int4 on AVX-512, with int16 activations, or int8 ones and VNNI): two spans at a time
    in 512-bit registers, an odd last span alone (see ``_spans``)."""
    spans = layout.k // SPAN
    if wide and layout.fmt.bits == 4:
        with T.serial(0, spans // 2) as pair:
            _spans(layout, bits, weights, acc, first_row, batch, xq, xd, xs, [pair * 2, pair * 2 + 1], vnni)
        if spans % 2:
            _spans(layout, bits, weights, acc, first_row, batch, xq, xd, xs, [spans - 1], vnni)
    else:
        with T.serial(0, spans) as span:
            _spans(layout, bits, weights, acc, first_row, batch, xq, xd, xs, [span], vnni)


def _spans(layout: WeightLayout, bits: int, weights, acc, first_row, batch, xq, xd, xs, spans: list,
           vnni: bool) -> None:
    """One span (or two consecutive ones in 512-bit registers) of the 4 weight rows.

    The 4 rows' unpacked values are bound first; then, per activation row, its activations are
    loaded once, each weight row's integer dots of a span (int32x8: group A's in lanes 0-3, B's
    in 4-7) computed in registers, and ``_combine`` sums them into one vector
    [r0 A, r1 A, r2 A, r3 A, r0 B, ... r3 B], so one conversion and scaling serves the 4 rows.
    Two spans: a 64-byte load widens to the two spans' int16 values side by side (the unpacks work
    within 128-bit lanes), their activations are side by side in memory too (``_part_positions``),
    each ``vpmaddwd`` (``vpdpwssd`` with VNNI) covers both, and the
    512-bit dots split into the two spans' halves before ``_combine``.
    """
    k = layout.k
    count = len(spans)
    lanes = LANES * count
    nibble_mask = bcast(const(0x0F0F0F0F, "uint32"), lanes)
    q6_k = layout.fmt.name == "q6_k"
    scales, minimums, rows = [], [], []
    for r in range(ROWS):
        row = first_row + r
        for span in spans:
            _prefetch_ahead(layout, weights, row, span * LANES, span * 2)
        words = vload(weights[0], row, spans[0] * LANES, lanes=lanes)  # 64 nibbles a span
        low = tirx.bitwise_and(words, nibble_mask)
        high = tirx.bitwise_and(tirx.shift_right(words, bcast(const(4, "uint32"), lanes)), nibble_mask)
        span = spans[0]  # 5- and 6-bit formats: one span at a time
        if layout.fmt.bits == 5:  # OR in the fifth bits: evens' of both groups, then odds'
            a = load(layout.buffer(weights, "qhigh"), row, span * 2)
            c = load(layout.buffer(weights, "qhigh"), row, span * 2 + 1)
            half = const(0xFFFF, "uint32")
            low = tirx.bitwise_or(low, _bit_bytes(tirx.bitwise_or(tirx.bitwise_and(a, half),
                                                                  tirx.shift_left(c, const(16, "uint32")))))
            high = tirx.bitwise_or(high, _bit_bytes(tirx.bitwise_or(
                tirx.shift_right(a, const(16, "uint32")), tirx.bitwise_and(c, const(0xFFFF0000, "uint32")))))
        # Bound once: the loop over activation rows reuses them from registers.
        if q6_k:
            low, high = _q6_k_highs(layout, weights, row, span, low, high)
            rows.append([T.bind(v) for v in _q6_k_unpacked(layout, bits, weights, row, span, low, high)])
        elif bits == 8:
            rows.append([T.bind(tirx.reinterpret(f"int8x{BYTES * count}", v)) for v in (low, high)])
        else:
            rows.append([T.bind(_widen_nibbles(v, upper)) for v in (low, high) for upper in (False, True)])
        scales.append(layout.group_scales(weights, row, spans[0] * 2, 2 * count))
        if layout.fmt.asymmetric and not q6_k:
            minimums.append(layout.group_minimums(weights, row, spans[0] * 2, 2 * count))
    scale, minimum = _bind_by_row(scales, minimums, 2 * count)

    def apply(slot, i):
        at = i * k + spans[0] * SPAN
        if bits == 8:
            width = BYTES * count  # two spans: [evens of both | odds of both] (``_part_positions``)
            evens, odds = T.bind(vload(xq, at, lanes=width)), T.bind(vload(xq, at + width, lanes=width))
            if q6_k:  # less the same products of 32, then times the sub-block scales
                thirty_two = bcast(const(32, "int8"), BYTES)
                offsets = T.bind(_pmaddubsw(thirty_two, evens) + _pmaddubsw(thirty_two, odds))
                per_row = [_pmaddwd(_pmaddubsw(u[0], evens) + _pmaddubsw(u[1], odds) - offsets, u[2]) for u in rows]
            else:
                per_row = [_int8_dots([(u[0], evens), (u[1], odds)], vnni) for u in rows]
        else:  # chunk n (of both spans, interleaved: _part_positions): the order of the widened nibbles
            x = [T.bind(vload(xq, at + 16 * count * n, lanes=16 * count)) for n in range(4)]
            per_row = [tree_sum([_pmaddwd(w, x[n]) for n, w in enumerate(u)]) for u in rows]
        summed = _summed(per_row, in_float=q6_k and bits == 16)
        pair = _group_lanes(layout, i, spans[0] * 2)  # the spans' activation scales and sums are adjacent
        x_scale, x_sum = vload(xd, pair, lanes=lanes), vload(xs, pair, lanes=lanes)
        if q6_k:  # W = d * (sc * (q - 32)), the bracket in the integer dots
            term = summed * (scale * x_scale)
        elif layout.fmt.asymmetric:  # W = scale*q + minimum
            term = summed * (scale * x_scale) + minimum * x_sum
        else:  # W = scale*(q - 8), or (q - 16) for q5_0
            term = (summed * x_scale - x_sum * bcast(const(layout.zero_point), lanes)) * scale
        _accumulate(acc, slot, _halves_added(term) if count > 1 else term)
    _each(batch, apply)


def _int8_rows(layout: WeightLayout, bits: int, weights, acc, first_row, batch, xq, xd, xs, xa, wide: bool,
               vnni: bool) -> None:
    """Each group of the ``ROWS`` (4) weight rows loaded once, applied to every activation row; the 4
    rows' dots share one conversion and scaling as in ``_int4_rows`` (here a row's sum is split
    over lanes r and 4 + r). ``wide`` with int16 activations: symmetric q8 four groups at a time
    (``_q8_quad``); the groups after those, and q8_m, a group's 32 products in one 512-bit
    ``vpmaddwd``, its halves added before ``_combine``."""
    k, groups = layout.k, layout.groups
    quads = _quads(layout, bits, wide)
    if quads:
        with T.serial(0, quads // QUAD) as quad:
            _q8_quad(layout, weights, acc, first_row, batch, xq, xd, quad)
    with T.serial(quads, groups) as g:
        scales, minimums, rows = [], [], []
        for r in range(ROWS):
            row = first_row + r
            _prefetch_ahead(layout, weights, row, g * GROUP_SIZE, g)
            w = T.bind(vload(weights[0], row, g * GROUP_SIZE, lanes=BYTES))
            if bits == 8:
                rows.append(w)
            elif wide:
                rows.append(T.bind(tirx.Cast("int16x32", w)))
            else:
                rows.append([T.bind(tirx.Cast("int16x16", tirx.Shuffle([w], list(range(h * 16, h * 16 + 16)))))
                             for h in range(2)])
            scales.append(bcast(layout.group_scale(weights, row, g), 2))  # row r's sum: lanes r and 4 + r
            if layout.fmt.asymmetric:
                minimums.append(bcast(layout.group_minimum(weights, row, g), 2))
        w_scale, w_min = _bind_by_row(scales, minimums, 2)

        def apply(slot, i):
            at = i * k + g * GROUP_SIZE
            if bits == 8:
                signs, magnitudes = T.bind(vload(xq, at, lanes=BYTES)), T.bind(vload(xa, at, lanes=BYTES))
                per_row = [_int8_dots([(magnitudes, _psignb(w, signs))], vnni) for w in rows]
            elif wide:
                x = T.bind(vload(xq, at, lanes=2 * 16))
                per_row = [_halves_added(_pmaddwd(w, x)) for w in rows]
            else:
                x = [T.bind(vload(xq, at + 16 * h, lanes=16)) for h in range(2)]
                per_row = [_pmaddwd(halves[0], x[0]) + _pmaddwd(halves[1], x[1]) for halves in rows]
            x_scale = bcast(load(xd, _group_lanes(layout, i, g)), LANES)
            term = _summed(per_row, in_float=False) * (w_scale * x_scale)
            if w_min is not None:  # q8_m: + minimum * the group's sum
                term = term + w_min * vload(xs, (i * groups + g) * LANES, lanes=LANES)
            _accumulate(acc, slot, term)
        _each(batch, apply)


def _q8_quad(layout: WeightLayout, weights, acc, first_row, batch, xq, xd, quad) -> None:
    """Four groups of the ``ROWS`` (4) weight rows (q8, int16 activations, AVX-512): each row's
    128 bytes are reordered by 8-byte chunk (``_quad_position``) and widened to 4 int16x32 vectors,
    so the 4 ``vpdpwssd`` of an activation row leave each group's sum in one 128-bit lane. The 4
    rows' results are then combined as two int4 spans are (``_combine``): one conversion and
    scaling per 4 groups of 4 rows, where one group at a time takes one per group and a
    16-lane reduction per row."""
    k, g = layout.k, quad * QUAD
    scales, rows = [], []
    for r in range(ROWS):
        row = first_row + r
        for line in range(2):
            _prefetch_ahead(layout, weights, row, (g + 2 * line) * GROUP_SIZE, g + 2 * line)
        chunks = tirx.Shuffle([vload(weights[0], row, g * GROUP_SIZE, lanes=QUAD * GROUP_SIZE)], _QUAD_ORDER)
        rows.append([T.bind(tirx.Cast("int16x32", tirx.Shuffle([chunks], list(range(n * BYTES, (n + 1) * BYTES)))))
                     for n in range(QUAD)])
        scales.append(layout.group_scales(weights, row, g, QUAD))
    scale, _ = _bind_by_row(scales, [], QUAD)

    def apply(slot, i):
        at = i * k + g * GROUP_SIZE
        x = [T.bind(vload(xq, at + n * BYTES, lanes=BYTES)) for n in range(QUAD)]
        per_row = [tree_sum([_pmaddwd(w, x[n]) for n, w in enumerate(u)]) for u in rows]
        x_scale = vload(xd, _group_lanes(layout, i, g), lanes=QUAD * GROUP_LANES)
        term = _summed(per_row, in_float=False) * (scale * x_scale)
        _accumulate(acc, slot, _halves_added(term))
    _each(batch, apply)


def _accumulate(acc, slot, term) -> None:
    """Add ``term`` (the 4 weight rows' float sums of one span or group) to activation row ``slot``'s."""
    T.buffer_store(acc, vload(acc, slot * LANES, lanes=LANES) + term, vstore_index(slot * LANES, lanes=LANES))


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


def _q6_k_unpacked(layout: WeightLayout, bits: int, weights, row, span, low, high) -> list:
    """q6_k's span made ready for the activations, once per weight row.

    The span has 4 sub-blocks of 16 values, each with its int8 scale ``sc``, applied in integers.
    int8: the unsigned 6-bit bytes (low, high) and ``sc`` per int16 lane for the ``vpmaddwd`` that
    follows ``vpmaddubsw`` of the values less the same of 32 (the pair sums of ``(q - 32) * x`` fit
    int16: |.| <= 4 * 32 * 127); int16 lane j of those pairs holds elements 4j..4j+3, sub-block
    j // 4. int16: the widened values less 32, times ``sc`` (|.| <= 32 * 128, ``vpmullw``), ready for
    ``vpmaddwd`` (|sum| <= 8 * 4096 * 32767 < 2**31).
    """
    sc = tirx.Cast("int16x4", vload(layout.buffer(weights, "sc"), row, span * 4, lanes=4))
    if bits == 8:
        return [tirx.reinterpret("int8x32", low), tirx.reinterpret("int8x32", high),
                tirx.Shuffle([sc] * 4, [j // 4 for j in range(16)])]
    out = []
    for v, upper in ((v, upper) for v in (low, high) for upper in (False, True)):
        # int16 lane l of the widened bytes is element 2 * byte (+1): sub-block (2 if l >= 8) + upper
        sub_scales = tirx.Shuffle([sc] * 4, [(2 if lane >= 8 else 0) + int(upper) for lane in range(16)])
        out.append((_widen_nibbles(v, upper) - bcast(const(32, "int16"), 16)) * sub_scales)
    return out


def _widen_nibbles(nibbles, upper: bool):
    """int16 values from bytes 0-7 (or 8-15) of each 128-bit lane of a vector of nibbles
    (32 bytes: bytes 0-7 and 16-23 into int16x16; 64 bytes: also 32-39 and 48-55 into int16x32):
    ``vpunpcklbw`` / ``vpunpckhbw`` against zero, which work within each 128-bit lane."""
    size = _lanes(nibbles) * 4
    data = tirx.reinterpret(f"uint8x{size}", nibbles)
    zero = bcast(const(0, "uint8"), size)
    first = 8 if upper else 0
    order = []
    for k in range(size // 2):
        byte = 16 * (k // 8) + first + k % 8
        order += [byte, size + byte]
    return tirx.reinterpret(f"int16x{size // 2}", tirx.Shuffle([data, zero], order))


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
    """``vpmaddwd`` of int16x16 (AVX2) or int16x32 (AVX-512BW) vectors; with VNNI, LLVM fuses it
    with the addition that follows into ``vpdpwssd``."""
    if _lanes(a) == 32:
        return tirx.call_llvm_pure_intrin("int32x16", "llvm.x86.avx512.pmaddw.d.512", a, b)
    return tirx.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd", a, b)


def _int8_dots(pairs, vnni: bool):
    """int32 sums of 4 neighbouring products of unsigned by signed bytes, over the (unsigned,
    signed) byte vector ``pairs`` (32 bytes -> int32x8; 64 -> int32x16, VNNI only): ``vpmaddubsw``
    into int16 pairs, added, widened by ``vpmaddwd`` of ones; or with ``vnni`` one ``vpdpbusd``
    per pair. The same integers either way: here no int16
    sum saturates (unsigned values <= 31 against activations in [-127, 127], two pairs added:
    <= 15,748; q8's |activation| against its weight with the activation's sign: <= 32,512)."""
    width = _lanes(pairs[0][0])  # 32 bytes, or 64 (two spans in 512-bit registers, AVX512-VNNI)
    if vnni:
        total = bcast(const(0, "int32"), width // 4)
        for unsigned, signed in pairs:
            total = tirx.call_llvm_pure_intrin(f"int32x{width // 4}", f"llvm.x86.avx512.vpdpbusd.{width * 8}", total,
                                               unsigned, signed)
        return total
    if width != BYTES:
        raise ValueError("int8 products of 64 bytes need VNNI's 512-bit vpdpbusd")
    return _pmaddwd(tree_sum([_pmaddubsw(unsigned, signed) for unsigned, signed in pairs]),
                    bcast(const(1, "int16"), 16))


def _psignb(values, signs):
    return tirx.call_llvm_pure_intrin("int8x32", "llvm.x86.avx2.psign.b", values, signs)


def _combine(per_row, dtype: str = "int32x8", intrinsic: str = "llvm.x86.avx2.phadd.d"):
    """[A, A, A, A, B, B, B, B] partial sums of 4 rows -> [r0 A, r1 A, r2 A, r3 A, r0 B .. r3 B]
    (``vphaddd`` / ``vhaddps`` add neighbouring lanes within each 128-bit lane). 16 lanes (two
    spans, AVX-512 has no horizontal add): the same within each of the four 128-bit lanes, from
    the even and odd lanes' shuffles."""
    def hadd(a, b):
        if _lanes(a) == 2 * LANES:
            evens = [4 * (j // 4) + 2 * (j % 2) + 2 * LANES * ((j // 2) % 2) for j in range(2 * LANES)]
            return tirx.Shuffle([a, b], evens) + tirx.Shuffle([a, b], [e + 1 for e in evens])
        return tirx.call_llvm_pure_intrin(dtype, intrinsic, a, b)
    return hadd(hadd(per_row[0], per_row[1]), hadd(per_row[2], per_row[3]))


def _summed(per_row, in_float: bool) -> tirx.PrimExpr:
    """The 4 rows' int32x8 dots of one activation row combined, as float. ``in_float``: converted
    first and summed in float, where a group's integer sum can pass int32 (q6_k with int16
    activations: 32 * 4096 * 32767 = 2**32; a lane's 8 products fit)."""
    if in_float:
        return _combine([to_f32(v, _lanes(v)) for v in per_row], "float32x8", "llvm.x86.avx.hadd.ps.256")
    return to_f32(_combine(per_row), _lanes(per_row[0]))


def _bind_by_row(scales, minimums, groups: int):
    """The 4 rows' scales (and minimums, if any) in the lanes of ``_combine``, bound once."""
    return T.bind(_by_row(scales, groups)), (T.bind(_by_row(minimums, groups)) if minimums else None)


def _by_row(per_row, groups: int):
    """4 rows' vectors of ``groups`` values [a, b, ..] -> [r0 a, r1 a, r2 a, r3 a, r0 b .. r3 b],
    the lanes of ``_combine`` (two spans: 4 groups, 16 lanes)."""
    return tirx.Shuffle(per_row, [r * groups + g for g in range(groups) for r in range(ROWS)])


def _prefetch_ahead(layout: WeightLayout, weights, row, column, group) -> None:
    """Prefetch the same columns ``PREFETCH_BYTES`` further down the weight stream, into L2 (see
    ``PREFETCH_BYTES``)."""
    ahead = max(1, PREFETCH_BYTES // layout.row_bytes())
    T.evaluate(prefetch(weights[0], row + ahead, column))
    for extra in weights[1:]:
        per_group = int(extra.shape[1]) // layout.groups  # q6_k: 2 per group; K-quant super-block ones are few
        if per_group:
            T.evaluate(prefetch(extra, row + ahead, group * per_group))


def _halves_added(vector):
    """int32x8: lanes 0-7 plus lanes 8-15 of an int32x16."""
    return (tirx.Shuffle([vector], list(range(LANES))) + tirx.Shuffle([vector], list(range(LANES, 2 * LANES))))


def _lanes(vector) -> int:
    return vector.ty.dtype.lanes
