"""Decode matmul on aarch64 NEON with integer activations and integer dot products.

The counterpart of ``avx2_dot`` for 128-bit NEON registers. Activations are rounded once per
call, per group of 32, to signed integers of ``bits`` bits (scale = max|x| / (2**(bits-1) - 1)),
and each 16-byte load of weights feeds integer multiply-adds:

- ``bits=16`` (near-exact): weight nibbles or bytes are widened to int16 (``uxtl``/``sxtl``) and
  multiplied by int16 activations with widening multiply-adds into int32 (``smull``/``smlal``,
  base AdvSIMD, any ARMv8 core).
- ``bits=8`` (llama.cpp's method): ``sdot`` (ARMv8.2 ``+dotprod``: Cortex-A55/A76 and later)
  multiplies 16 int8 pairs and adds each 4 into one of 4 int32 lanes, in one instruction.

int4 (q4, q4_1, q4_k), 5-bit (q5_0, q5_1, q5_k: the fifth bits ORed into the nibbles' bytes as
0x10) and q6_k (its top two bits ORed in as bits 4-5, see ``_q6_k_dots``):
a 16-byte load holds one group (32 nibbles); its low nibbles are the group's
even elements in order and the high nibbles the odd ones, so the prologue stores each group's
activations as [evens, odds]. Each group's products end in 4 int32 lanes, scaled once; the group
minimum (q4_1, q4_k, q5_1, q5_k) or the -8 / -16 zero point (q4 / q5_0) multiplies the group's
sum of rounded activations (``vector.rounded_sum``, a quarter of it in each lane). q8 and q8_m:
natural order, two loads per group.

The error against float activations is at most half a rounding step of each activation,
max|x_g| / (2**bits - 2) * sum|W_g| per group (as for ``avx2_dot``).
"""

from __future__ import annotations

from tvm import tirx
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels.vector import (
    bcast,
    const,
    lane_max,
    load,
    rounded_sum,
    to_f32,
    tree_max,
    tree_sum,
    vload,
    vstore_index,
)
from edge_os.compile.kernels.weights import WeightLayout
from edge_os.quantize.formats import GROUP_SIZE

LANES = 4  # float32 / int32 lanes of a 128-bit register
BYTES = 16  # int8 lanes of a 128-bit register
HALF = GROUP_SIZE // 2


def supports(layout: WeightLayout) -> bool:
    return layout.fmt.bits in (4, 5, 6, 8)


def decoder(bits: int):
    """The decode path (arguments of ``matmul_fp32.decode_fp32``) for ``bits``-bit activations;
    ``bits=8`` needs ``+dotprod``."""
    if bits not in (8, 16):
        raise ValueError(f"activations of {bits} bits")

    def decode(layout: WeightLayout, tiling, x, weights, y, m) -> None:
        k, groups = layout.k, layout.groups
        xq = T.decl_buffer((m * k,), f"int{bits}")  # rounded activations (int4: evens, odds)
        xd = T.decl_buffer((m * groups,), "float32")  # their scale per group
        xs = T.decl_buffer((m * groups,), "float32")  # a quarter of each group's float sum
        _quantize_activations(layout, bits, x, m, xq, xd, xs)
        rows = tiling.rows
        with T.parallel(0, layout.n // rows) as block:
            acc = T.decl_buffer((rows * LANES,), "float32")
            with T.serial(0, m) as i:
                for r in range(rows):
                    T.buffer_store(acc, bcast(const(0.0), LANES), vstore_index(r * LANES, lanes=LANES))
                with T.serial(0, groups) as g:
                    at = i * k + g * GROUP_SIZE
                    x_scale = bcast(load(xd, i * groups + g), LANES)
                    x_sum = bcast(load(xs, i * groups + g), LANES)
                    for r in range(rows):
                        row = block * rows + r
                        dots = to_f32(_group_dots(layout, bits, weights, row, g, xq, at), LANES)
                        scale = bcast(layout.group_scale(weights, row, g), LANES)
                        if layout.fmt.asymmetric:  # W = scale*q + minimum
                            minimum = bcast(layout.group_minimum(weights, row, g), LANES)
                            term = dots * (scale * x_scale) + minimum * x_sum
                        elif layout.zero_point:  # W = scale*(q - 8), or (q - 16) for q5_0
                            term = (dots * x_scale - x_sum * bcast(const(layout.zero_point), LANES)) * scale
                        else:  # q8, and q6_k (d times the integer sc * (q - 32) of the dots)
                            term = dots * (scale * x_scale)
                        old = vload(acc, r * LANES, lanes=LANES)
                        T.buffer_store(acc, old + term, vstore_index(r * LANES, lanes=LANES))
                for r in range(rows):
                    total = tree_sum([load(acc, r * LANES + lane) for lane in range(LANES)])
                    T.buffer_store(y, total, [i, block * rows + r])

    return decode


def _quantize_activations(layout: WeightLayout, bits: int, x, m, xq, xd, xs) -> None:
    k, groups = layout.k, layout.groups
    top = const(float(2 ** (bits - 1) - 1))
    with T.serial(0, m) as i:
        with T.serial(0, groups) as g:
            # Bound once (see avx2_dot's prologue): the stores between uses keep LLVM from merging them.
            v = [T.bind(vload(x, i, g * GROUP_SIZE + w * 8, lanes=8)) for w in range(GROUP_SIZE // 8)]
            peak = T.bind(lane_max(tree_max([tirx.max(a, const(0.0) - a) for a in v]), 8))
            inv = T.bind(tirx.Select(peak > const(0.0), top / peak, const(0.0)))
            rounded = [T.bind(tirx.round(a * bcast(inv, 8))) for a in v]
            x_step = T.bind(peak / top)
            T.buffer_store(xd, x_step, [i * groups + g])
            T.buffer_store(xs, rounded_sum(rounded, x_step, 8) * const(0.25), [i * groups + g])
            base = i * k + g * GROUP_SIZE
            for w, r in enumerate(rounded):
                q = tirx.Cast(f"int{bits}x8", r)
                if layout.fmt.bits != 8:  # int4 and q5_0: element 8w+2j is the low nibble of byte 4w+j
                    T.buffer_store(xq, tirx.Shuffle([q], [0, 2, 4, 6]), vstore_index(base + 4 * w, lanes=4))
                    T.buffer_store(xq, tirx.Shuffle([q], [1, 3, 5, 7]), vstore_index(base + HALF + 4 * w, lanes=4))
                else:
                    T.buffer_store(xq, q, vstore_index(base + 8 * w, lanes=8))


def _group_dots(layout: WeightLayout, bits: int, weights, row, g, xq, at):
    """int32x4 whose lanes add up to the group's integer dot product."""
    if layout.fmt.bits != 8:
        words = vload(weights[0], row, g * LANES, lanes=LANES)  # 32 nibbles
        mask = bcast(const(0x0F0F0F0F, "uint32"), LANES)
        low = tirx.reinterpret("int8x16", tirx.bitwise_and(words, mask))
        high = tirx.reinterpret("int8x16", tirx.bitwise_and(tirx.shift_right(words, bcast(const(4, "uint32"), LANES)),
                                                            mask))
        if layout.fmt.bits == 5:  # fifth bits: the evens' in bits 0-15 of the word, the odds' in 16-31
            fifth = load(layout.buffer(weights, "qhigh"), row, g)
            low = tirx.bitwise_or(low, _bit_bytes(fifth))
            high = tirx.bitwise_or(high, _bit_bytes(tirx.shift_right(fifth, const(16, "uint32"))))
        if layout.fmt.name == "q6_k":
            return _q6_k_dots(layout, bits, weights, row, g, low, high, xq, at)
    else:
        low = vload(weights[0], row, g * GROUP_SIZE, lanes=BYTES)
        high = vload(weights[0], row, g * GROUP_SIZE + BYTES, lanes=BYTES)
    if bits == 8:
        zero = bcast(const(0, "int32"), LANES)
        return _sdot(_sdot(zero, low, vload(xq, at, lanes=BYTES)), high, vload(xq, at + BYTES, lanes=BYTES))
    products = []
    for h, half in enumerate((low, high)):
        for part in range(2):
            w16 = tirx.Cast("int16x8", tirx.Shuffle([half], list(range(8 * part, 8 * part + 8))))
            x16 = vload(xq, at + h * BYTES + 8 * part, lanes=8)
            products.append(tirx.Cast("int32x8", w16) * tirx.Cast("int32x8", x16))  # smull, smull2
    wide = tree_sum(products)
    return tirx.Shuffle([wide], [0, 1, 2, 3]) + tirx.Shuffle([wide], [4, 5, 6, 7])


def _q6_k_dots(layout: WeightLayout, bits: int, weights, row, g, low, high, xq, at):
    """q6_k's ``sum sc * (q - 32) * x`` of a group in 4 int32 lanes: the top two bits ORed into
    the nibbles' bytes, 32 taken off (signed int8), the products summed per sub-block of 16 and
    multiplied by its int8 ``sc`` in integers.

    The group's 32 pairs of top bits are 2 ``qhigh`` words; nibble b of them (byte b // 2, low
    nibble first) holds those of elements 2b (bits 0-1) and 2b+1 (bits 2-3), the values in byte b
    of ``low`` and of ``high``. Bytes 0-7 (elements 0-15) are sub-block 0, bytes 8-15 sub-block 1.
    """
    words = vload(layout.buffer(weights, "qhigh"), row, g * 2, lanes=2)
    mask = bcast(const(0x0F0F0F0F, "uint32"), 2)
    first = tirx.reinterpret("uint8x8", tirx.bitwise_and(words, mask))
    second = tirx.reinterpret("uint8x8", tirx.bitwise_and(tirx.shift_right(words, bcast(const(4, "uint32"), 2)), mask))
    spread = tirx.reinterpret("int8x16", tirx.Shuffle([first, second], [b // 2 + 8 * (b % 2) for b in range(BYTES)]))
    top, offset = bcast(const(0x30, "int8"), BYTES), bcast(const(32, "int8"), BYTES)
    shifted = [tirx.bitwise_and(tirx.shift_left(spread, bcast(const(n, "int8"), BYTES)), top) for n in (4, 2)]
    low, high = tirx.bitwise_or(low, shifted[0]) - offset, tirx.bitwise_or(high, shifted[1]) - offset
    sc = tirx.Cast("int32x2", vload(layout.buffer(weights, "sc"), row, g * 2, lanes=2))
    if bits == 8:  # sdot lane l: elements 8l .. 8l+7, sub-block l // 2
        zero = bcast(const(0, "int32"), LANES)
        dots = _sdot(_sdot(zero, low, vload(xq, at, lanes=BYTES)), high, vload(xq, at + BYTES, lanes=BYTES))
        return dots * tirx.Shuffle([sc, sc], [0, 0, 1, 1])
    parts = []
    for part in range(2):  # sub-block 0 from bytes 0-7 of low (evens) and high (odds), then 1
        products = []
        for h, half in enumerate((low, high)):
            w16 = tirx.Cast("int16x8", tirx.Shuffle([half], list(range(8 * part, 8 * part + 8))))
            x16 = vload(xq, at + h * BYTES + 8 * part, lanes=8)
            products.append(tirx.Cast("int32x8", w16) * tirx.Cast("int32x8", x16))  # smull, smull2
        wide = tree_sum(products)
        parts.append((tirx.Shuffle([wide], [0, 1, 2, 3]) + tirx.Shuffle([wide], [4, 5, 6, 7]))
                     * bcast(tirx.Shuffle([sc], [part]), LANES))
    return tree_sum(parts)


def _bit_bytes(word):
    """int8x16 whose byte b is 0x10 when bit b of the low 16 bits of ``word`` is set, else 0."""
    data = tirx.reinterpret("uint8x16", bcast(word, LANES))
    spread = tirx.Shuffle([data], [b // 8 for b in range(BYTES)])
    bit = tirx.reinterpret("uint8x16", bcast(const(0x8040201008040201, "uint64"), 2))
    zero = bcast(const(0, "uint8"), BYTES)
    fifth = tirx.Select(tirx.bitwise_and(spread, bit) != zero, bcast(const(0x10, "uint8"), BYTES), zero)
    return tirx.reinterpret("int8x16", fifth)


def _sdot(acc, a, b):
    """acc[l] += sum of a[4l+j] * b[4l+j] (signed int8), one ``sdot``."""
    return tirx.call_llvm_pure_intrin("int32x4", "llvm.aarch64.neon.sdot.v4i32.v16i8", acc, a, b)
