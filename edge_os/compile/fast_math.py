"""SiLU and tanh-approximated GELU with a vectorizable exponential, for CPU targets.

Legalized, ``silu(x) = x * sigmoid(x)`` lowers to a libm ``expf`` call per element and
``gelu_tanh`` to a libm ``tanhf`` call per element, which LLVM cannot vectorize: on a SmolLM2
decode step SiLU was as slow as a matmul, and Gemma 3's GeGLU took 8% of a 128-token prefill.
TVM's ``topi.fast_exp`` (range reduction + degree-6 polynomial, relative error ~1e-7, i.e. float
rounding) is plain arithmetic, so the fused kernels vectorize. GELU uses the identity
``0.5 * x * (1 + tanh(y)) = x * sigmoid(2y)`` with ``y = sqrt(2/pi) * (x + 0.044715 x^3)``.
"""

from __future__ import annotations

import math

import tvm
from tvm import relax, te, topi
from tvm.relax.expr_functor import PyExprMutator, mutator

from edge_os.compile.relax_rewrite import rewrite_relax_functions


def _x_sigmoid(x: te.Tensor, z: te.Tensor, name: str) -> te.Tensor:
    """``x * sigmoid(z)`` elementwise, as ``x / (1 + exp(-z))`` (``fast_exp`` clamps its input,
    so a very negative ``z`` gives ``x / inf``, a signed zero)."""
    e = topi.fast_exp(topi.negative(z))
    one = tvm.tirx.const(1.0, x.dtype)
    return te.compute(x.shape, lambda *i: x(*i) / (one + e(*i)), name=name)


def _silu(x: te.Tensor) -> te.Tensor:
    return _x_sigmoid(x, x, "silu")


def _gelu_tanh(x: te.Tensor) -> te.Tensor:
    scale = tvm.tirx.const(2.0 * math.sqrt(2.0 / math.pi), x.dtype)
    cubic = tvm.tirx.const(0.044715, x.dtype)
    two_y = te.compute(x.shape, lambda *i: scale * (x(*i) + cubic * x(*i) * x(*i) * x(*i)), name="gelu_arg")
    return _x_sigmoid(x, two_y, "gelu_tanh")


_FAST = {"relax.nn.silu": (_silu, "silu"), "relax.nn.gelu_tanh": (_gelu_tanh, "gelu_tanh")}


@mutator
class _Rewriter(PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.Op) and call.op.name in _FAST:
            compute, name = _FAST[call.op.name]
            return self.builder_.call_te(compute, call.args[0], primfunc_name_hint=name)
        return call


@tvm.transform.module_pass(opt_level=0, name="edge_os.FastActivations")
def fast_activations(mod: tvm.ir.IRModule, _ctx: tvm.transform.PassContext) -> tvm.ir.IRModule:
    """Replace every ``relax.nn.silu`` and ``relax.nn.gelu_tanh`` with the fast-exp formulation."""
    return rewrite_relax_functions(mod, _Rewriter)
