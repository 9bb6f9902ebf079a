"""The quantized operators as TVM tensor programs (the portable reference kernels).

Each kernel is a ``PrimFunc`` tagged with the attribute ``edge_os.kernel`` (the operator name and
its static shape), so the compile pipeline can swap in a faster kernel for a target without the
model code knowing. Semantics match ``edge_os.quantize.reference`` exactly.
"""

from __future__ import annotations

from tvm import te, tirx

from edge_os.quantize.formats import GROUP_SIZE, SUPER_BLOCK, WeightFormat, stored_arrays

KERNEL_ATTR = "edge_os.kernel"


def weight_placeholders(fmt: WeightFormat, n: int, k: int, scale_dtype: str) -> list[te.Tensor]:
    """The TE placeholders of a stored weight, in argument order (``formats.stored_arrays``)."""
    return [te.placeholder(shape, dtype, name=name) for name, shape, dtype in stored_arrays(fmt, n, k, scale_dtype)]


def _u32(value) -> tirx.PrimExpr:
    return value.astype("uint32") if hasattr(value, "astype") else tirx.const(value, "uint32")


def _bits(word, shift, width: int) -> tirx.PrimExpr:
    """``(word >> shift) & (2**width - 1)`` of a uint32 word, as int32."""
    return ((word >> _u32(shift)) & tirx.const((1 << width) - 1, "uint32")).astype("int32")


def dequantized_value(fmt: WeightFormat, load, i, j) -> tirx.PrimExpr:
    """The float32 value ``W[i, j]`` of a stored weight; ``load(name, row, col)`` reads one of its
    arrays (``formats.stored_arrays`` names). The operations and their order are those of the
    numpy reference (llama.cpp's for carried GGUF blocks), so results are bit-identical."""
    f32 = lambda v: v.astype("float32")  # noqa: E731
    if not fmt.quantized:
        return load("weight", i, j)
    if fmt.bits == 8:
        value = f32(load("qweight", i, j)) * f32(load("scale", i, j // GROUP_SIZE))
        return value + f32(load("minimum", i, j // GROUP_SIZE)) if fmt.asymmetric else value
    low = _bits(load("qweight", i, j // 8), (j % 8) * 4, 4)
    if fmt.bits == 5:  # the fifth bit: evens of the group in bits 0-15 of its word, odds in 16-31
        low = low | (_bits(load("qhigh", i, j // GROUP_SIZE), (j % 2) * 16 + (j % GROUP_SIZE) // 2, 1) << 4)
    if fmt.name in ("q4_k", "q5_k"):
        g, sb = j // GROUP_SIZE, j // SUPER_BLOCK
        scale = f32(load("d", i, sb)) * f32(load("sc", i, g))
        minimum = f32(load("dmin", i, sb)) * f32(load("mn", i, g))
        return scale * f32(low) - minimum
    if fmt.name == "q6_k":
        q = low | (_bits(load("qhigh", i, j // 16), (j % 16) * 2, 2) << 4)
        scale = f32(load("d", i, j // SUPER_BLOCK)) * f32(load("sc", i, j // 16))
        return scale * f32(q - 32)
    scale = f32(load("scale", i, j // GROUP_SIZE))
    if fmt.name == "q5_0":
        return f32(low - 16) * scale
    if fmt.asymmetric:
        return f32(low) * scale + f32(load("minimum", i, j // GROUP_SIZE))
    return (f32(low) - tirx.const(8.0, "float32")) * scale


def _dequantized(fmt: WeightFormat, weights: list[te.Tensor]):
    """A function ``(row, col) -> float32 value`` of the stored weight."""
    by_name = {t.op.name: t for t in weights}
    return lambda i, j: dequantized_value(fmt, lambda name, r, c: by_name[name][r, c], i, j)


def matmul_kernel(fmt: WeightFormat, n: int, k: int, scale_dtype: str = "float32") -> tirx.PrimFunc:
    """``y[m, n] = x[m, k] @ W[n, k]^T`` for any number of rows m (tokens)."""
    m = tirx.Var("m", "int64")
    x = te.placeholder((m, k), "float32", name="x")
    weights = weight_placeholders(fmt, n, k, scale_dtype)
    w = _dequantized(fmt, weights)
    r = te.reduce_axis((0, k), name="r")
    y = te.compute((m, n), lambda i, j: te.sum(x[i, r] * w(j, r), axis=r), name="y")
    func = te.create_prim_func([x, *weights, y]).without_attr("global_symbol")
    return func.with_attr(KERNEL_ATTR, {"op": "matmul", "format": fmt.name, "n": n, "k": k})


def take_kernel(fmt: WeightFormat, n: int, k: int, scale_dtype: str = "float32") -> tirx.PrimFunc:
    """``out[t, :] = W[ids[t], :]`` dequantized: the embedding lookup."""
    m = tirx.Var("m", "int64")
    ids = te.placeholder((m,), "int32", name="ids")
    weights = weight_placeholders(fmt, n, k, scale_dtype)
    w = _dequantized(fmt, weights)
    out = te.compute((m, k), lambda t, j: w(ids[t], j), name="rows")
    func = te.create_prim_func([ids, *weights, out]).without_attr("global_symbol")
    return func.with_attr(KERNEL_ATTR, {"op": "take", "format": fmt.name, "n": n, "k": k})
