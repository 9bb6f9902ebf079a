"""The quantized operators as TVM tensor programs (the portable reference kernels).

Each kernel is a ``PrimFunc`` tagged with the attribute ``edge_os.kernel`` (the operator name and
its static shape), so the compile pipeline can swap in a faster kernel for a target without the
model code knowing. Semantics match ``edge_os.quantize.reference`` exactly.
"""

from __future__ import annotations

from tvm import te, tirx

from edge_os.quantize.formats import GROUP_SIZE, WeightFormat

KERNEL_ATTR = "edge_os.kernel"


def weight_placeholders(fmt: WeightFormat, n: int, k: int, scale_dtype: str) -> list[te.Tensor]:
    """The TE placeholders of a stored weight, in argument order: qweight, scale[, minimum]."""
    groups = k // GROUP_SIZE
    if fmt.bits == 4:
        tensors = [te.placeholder((n, k // 8), "uint32", name="qweight")]
    elif fmt.bits == 8:
        tensors = [te.placeholder((n, k), "int8", name="qweight")]
    else:
        return [te.placeholder((n, k), "float32", name="weight")]
    tensors.append(te.placeholder((n, groups), scale_dtype, name="scale"))
    if fmt.asymmetric:
        tensors.append(te.placeholder((n, groups), scale_dtype, name="minimum"))
    return tensors


def _dequantized(fmt: WeightFormat, weights: list[te.Tensor]):
    """A function ``(row, col) -> float32 value`` of the stored weight."""
    if not fmt.quantized:
        return lambda i, j: weights[0][i, j]
    qweight, scale = weights[0], weights[1]

    def value(i, j):
        s = scale[i, j // GROUP_SIZE].astype("float32")
        if fmt.bits == 4:
            word = qweight[i, j // 8]
            q = ((word >> ((j % 8) * 4).astype("uint32")) & tirx.const(0xF, "uint32")).astype("float32")
            if fmt.asymmetric:
                return q * s + weights[2][i, j // GROUP_SIZE].astype("float32")
            return (q - tirx.const(8.0, "float32")) * s
        return qweight[i, j].astype("float32") * s

    return value


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
