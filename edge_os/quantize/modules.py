"""Quantized twins of ``nn.Linear`` / ``nn.Embedding`` and the mutator that swaps them in.

The model is written with plain float layers; ``quantize_model`` rewrites it so each weight has
the format a package gives it (``formats_by_name`` maps a parameter name such as
``model.layers.0.mlp.down_proj.weight`` to ``q4``, ``q4_1``, ``q8`` or ``f32``).
"""

from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from edge_os.quantize.formats import FORMATS, WeightFormat, stored_arrays
from edge_os.quantize.tir import matmul_kernel, take_kernel


def _declare_weight(module: nn.Module, fmt: WeightFormat, n: int, k: int, scale_dtype: str) -> list[nn.Parameter]:
    """Create the stored parameters of a ``[n, k]`` weight on ``module``, in kernel argument order."""
    params = []
    for name, shape, dtype in stored_arrays(fmt, n, k, scale_dtype):
        setattr(module, name, nn.Parameter(shape, dtype))
        params.append(getattr(module, name))
    return params


def quantized_matmul(x: nn.Tensor, fmt: WeightFormat, params: list[nn.Parameter], n: int, k: int,
                     scale_dtype: str) -> nn.Tensor:
    """``x[..., k] @ W^T -> [..., n]`` through the format's kernel."""
    lead = list(x.shape[:-1])
    x2 = op.reshape(x, (-1, k))
    out = nn.Tensor.placeholder((x2.shape[0], n), "float32")
    y = op.tensor_ir_op(matmul_kernel(fmt, n, k, scale_dtype), f"{fmt.name}_matmul", [x2, *params], out)
    return op.reshape(y, (*lead, n))


class QuantizedLinear(nn.Module):
    """``y = x @ W^T (+ bias)`` with ``W`` stored in a weight format."""

    def __init__(self, in_features: int, out_features: int, fmt: str, scale_dtype: str = "float32", bias: bool = False):
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.scale_dtype = FORMATS[fmt], scale_dtype
        self._weights = _declare_weight(self, self.fmt, out_features, in_features, scale_dtype)
        self.bias = nn.Parameter((out_features,), "float32") if bias else None

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        y = quantized_matmul(x, self.fmt, self._weights, self.out_features, self.in_features, self.scale_dtype)
        return y + self.bias if self.bias is not None else y


class QuantizedEmbedding(nn.Module):
    """An embedding table in a weight format; ``lm_head`` reuses it for tied output projections."""

    def __init__(self, num: int, dim: int, fmt: str, scale_dtype: str = "float32"):
        self.num, self.dim = num, dim
        self.fmt, self.scale_dtype = FORMATS[fmt], scale_dtype
        self._weights = _declare_weight(self, self.fmt, num, dim, scale_dtype)

    def forward(self, ids: nn.Tensor) -> nn.Tensor:
        out = nn.Tensor.placeholder((ids.shape[0], self.dim), "float32")
        kernel = take_kernel(self.fmt, self.num, self.dim, self.scale_dtype)
        return op.tensor_ir_op(kernel, f"{self.fmt.name}_take", [ids, *self._weights], out)

    def lm_head(self, x: nn.Tensor) -> nn.Tensor:
        return quantized_matmul(x, self.fmt, self._weights, self.num, self.dim, self.scale_dtype)


class _Quantizer(nn.Mutator):
    def __init__(self, formats_by_name: dict[str, str], scale_dtype: str):
        self.formats_by_name = formats_by_name
        self.scale_dtype = scale_dtype

    def visit_module(self, name: str, node: nn.Module):
        if isinstance(node, nn.Linear):
            fmt = self.formats_by_name.get(f"{name}.weight", "f32")
            return QuantizedLinear(node.in_features, node.out_features, fmt, self.scale_dtype,
                                   bias=node.bias is not None)
        if isinstance(node, nn.Embedding):
            fmt = self.formats_by_name.get(f"{name}.weight", "f32")
            return QuantizedEmbedding(node.num, node.dim, fmt, self.scale_dtype)
        return self.visit(name, node)


def quantize_model(model: nn.Module, formats_by_name: dict[str, str], scale_dtype: str = "float32") -> nn.Module:
    """Swap every Linear/Embedding of ``model`` for its quantized twin (in place; returns it)."""
    return _Quantizer(formats_by_name, scale_dtype).visit("", model)
