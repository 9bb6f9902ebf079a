"""Small helpers that build TIR vector expressions (loads, broadcasts, casts, lane sums).

Kernels here are written lane by lane in TIR rather than scheduled from TE: the loop nest, the
accumulators and the vector width are chosen by hand, and LLVM only allocates registers.
"""

from __future__ import annotations

from tvm import tirx


def const(value, dtype: str = "float32") -> tirx.PrimExpr:
    return tirx.const(value, dtype)


def load(buf: tirx.Buffer, *index) -> tirx.PrimExpr:
    """The scalar ``buf[index]`` as a plain expression (IRBuilder indexing yields a wrapper)."""
    return tirx.BufferLoad(buf, list(index))


def vload(buf: tirx.Buffer, *index, lanes: int) -> tirx.PrimExpr:
    """``lanes`` consecutive elements of ``buf`` starting at ``index`` (last axis contiguous)."""
    *lead, start = index
    return tirx.BufferLoad(buf, [*lead, tirx.Ramp(start, 1, lanes)])


def vstore_index(*index, lanes: int) -> list:
    """The index list of a vector store of ``lanes`` elements starting at ``index``."""
    *lead, start = index
    return [*lead, tirx.Ramp(start, 1, lanes)]


def bcast(value, lanes: int) -> tirx.PrimExpr:
    return tirx.Broadcast(value, lanes)


def to_f32(value: tirx.PrimExpr, lanes: int = 1) -> tirx.PrimExpr:
    """Cast to float32 (``lanes`` wide); a no-op for float32."""
    dtype = "float32" if lanes == 1 else f"float32x{lanes}"
    return value if str(value.ty) == dtype else tirx.Cast(dtype, value)


def nibbles(word: tirx.PrimExpr, first: int, lanes: int) -> tirx.PrimExpr:
    """float32 vector of nibbles ``first .. first+lanes-1`` of a uint32 ``word`` (values 0..15).

    The word is broadcast and shifted per lane (one variable shift), masked, and converted through
    int32 because AVX2 has no unsigned-to-float conversion.
    """
    shifts = tirx.Ramp(tirx.const(4 * first, "uint32"), tirx.const(4, "uint32"), lanes)
    q = tirx.bitwise_and(tirx.shift_right(tirx.Broadcast(word, lanes), shifts),
                         tirx.Broadcast(tirx.const(0xF, "uint32"), lanes))
    return tirx.Cast(f"float32x{lanes}", tirx.reinterpret(f"int32x{lanes}", q))


def tree_sum(values: list[tirx.PrimExpr]) -> tirx.PrimExpr:
    """Sum as a balanced tree: independent additions instead of one long dependency chain."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def rounded_sum(rounded: list[tirx.PrimExpr], step: tirx.PrimExpr, lanes: int) -> tirx.PrimExpr:
    """A group's activation sum as an integer dot product sees it: the sum of the rounded
    activations (float vectors of whole numbers) times their step.

    A weight with a zero point or a minimum, W = d*q + m (q4_1, q5_1, q4_k, q5_k, q8_m; q4 and
    q5_0 as m = -8d, -16d), is multiplied as d * (q . x_rounded) + m * sum. With this sum the result is
    exactly W . x_rounded, whose error d * ((q + m/d) . e) sees weights centred on zero (e: each
    activation's rounding error). The exact sum of x leaves d * (q . e) with q in 0..15, ~2x the
    error: SmolLM2 with int8 activations lost 7% of decode perplexity to it, and 0.2% without it.
    llama.cpp's Q8_1 blocks carry the same rounded sum."""
    return lane_sum(tree_sum(rounded), lanes) * step


def prefetch(buf: tirx.Buffer, *index) -> tirx.PrimExpr:
    """Hint the CPU to bring the cache line of ``buf[index]`` into L2 for reading (x86
    ``prefetcht1``). Not into L1 (``prefetcht0``): such a request holds one of the core's few L1
    miss buffers until its line arrives from DRAM, and those capped a Zen 4 core's weight stream
    at ~9 GB/s (``avx2_dot.PREFETCH_BYTES``)."""
    address = tirx.address_of(tirx.BufferLoad(buf, list(index)))
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    return tirx.call_llvm_intrin("void", "llvm.prefetch.p0", address, i32(0), i32(2), i32(1))


def exp2(x: tirx.PrimExpr, lanes: int) -> tirx.PrimExpr:
    """2**x for a float32 vector: split x = n + f (n the nearest integer, |f| <= 1/2), a degree-6
    Taylor polynomial for 2**f (relative error < 3e-7) and n added to the exponent bits. Plain
    arithmetic, so it vectorizes where libm's exp2f is called per lane. x is clamped to
    [-126, 126]."""
    x = tirx.max(tirx.min(x, bcast(const(126.0), lanes)), bcast(const(-126.0), lanes))
    n = tirx.floor(x + bcast(const(0.5), lanes))
    f = x - n
    # Taylor coefficients of 2**f = e**(f ln2): (ln2)^i / i!
    poly = bcast(const(1.5403530393381609e-4), lanes)
    for c in (1.3333558146428443e-3, 9.6181291076284772e-3, 5.5504108664821580e-2,
              2.4022650695910071e-1, 6.9314718055994531e-1, 1.0):
        poly = poly * f + bcast(const(c), lanes)
    exponent = tirx.shift_left(tirx.Cast(f"int32x{lanes}", n) + bcast(const(127, "int32"), lanes),
                               bcast(const(23, "int32"), lanes))
    return poly * tirx.reinterpret(f"float32x{lanes}", exponent)


def tree_max(values: list[tirx.PrimExpr]) -> tirx.PrimExpr:
    """Maximum as a balanced tree (see ``tree_sum``)."""
    while len(values) > 1:
        values = [tirx.max(values[i], values[i + 1]) if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def lane_max(vector: tirx.PrimExpr, lanes: int) -> tirx.PrimExpr:
    """The largest of a vector's ``lanes`` lanes, as a scalar."""
    return tree_max([tirx.Shuffle([vector], [lane]) for lane in range(lanes)])


def lane_sum(vector: tirx.PrimExpr, lanes: int) -> tirx.PrimExpr:
    """The sum of a vector's ``lanes`` lanes, as a scalar."""
    return tree_sum([tirx.Shuffle([vector], [lane]) for lane in range(lanes)])
