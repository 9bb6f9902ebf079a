"""SiLU with a vectorizable exponential, for CPU targets.

Legalized, ``silu(x) = x * sigmoid(x)`` lowers to a libm ``expf`` call per element, which LLVM
cannot vectorize: on a decode step that was as slow as a matmul. TVM's ``topi.fast_exp``
(range reduction + degree-6 polynomial, relative error ~1e-7, i.e. float rounding) is plain
arithmetic, so the fused kernel vectorizes.
"""

from __future__ import annotations

import tvm
from tvm import relax, te, topi
from tvm.relax.expr_functor import PyExprMutator, mutator


def _silu(x: te.Tensor) -> te.Tensor:
    e = topi.fast_exp(topi.negative(x))
    one = tvm.tirx.const(1.0, x.dtype)
    return te.compute(x.shape, lambda *i: x(*i) / (one + e(*i)), name="silu")


@mutator
class _Rewriter(PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.silu":
            return self.builder_.call_te(_silu, call.args[0], primfunc_name_hint="silu")
        return call


@tvm.transform.module_pass(opt_level=0, name="edge_os.FastSiLU")
def fast_silu(mod: tvm.ir.IRModule, _ctx: tvm.transform.PassContext) -> tvm.ir.IRModule:
    """Replace every ``relax.nn.silu`` with the fast-exp formulation."""
    rewriter = _Rewriter(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()
