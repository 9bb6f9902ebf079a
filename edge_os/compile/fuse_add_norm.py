"""A residual add and the RMSNorm after it as one kernel with two outputs.

A pre-norm decoder layer adds each block's output to the residual stream and normalizes the sum
for the next block: ``x = x + attn(...); h = rms_norm(x)``. Legalized, that is two kernels, the
add writing ``x`` and the norm reading it back, so every layer of every step pays two more kernel
calls and VM instructions than it needs (60 adds a SmolLM2 decode step). Here each such pair
becomes one ``call_tir`` that returns both the sum (the residual stream goes on) and the
normalized sum; the default CPU schedule (``schedule``) makes it one row loop that adds, sums the
squares and scales. The arithmetic is TVM's own (``topi.nn.rms_norm`` on the sum), so the numbers
are those of the two kernels it replaces.

Runs before ``LegalizeOps``, on ``relax.add`` of two tensors of one shape followed by a
``relax.nn.rms_norm`` of the sum, with no use of the sum between them.
"""

from __future__ import annotations

import itertools

import tvm
import tvm_ffi
from tvm import relax, te, topi
from tvm.relax.expr_functor import PyExprMutator, mutator

from edge_os.compile.relax_rewrite import rewrite_relax_functions


def _add_rms_norm(a: te.Tensor, b: te.Tensor, weight: te.Tensor, axis, epsilon: float):
    total = te.compute(a.shape, lambda *i: a(*i) + b(*i), name="residual")
    return [total, topi.nn.rms_norm(total, weight, axis=axis, epsilon=epsilon)]


def _is_call(value: relax.Expr, name: str) -> bool:
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name == name


def _same_tensor_type(a: relax.Expr, b: relax.Expr) -> bool:
    sa, sb = a.ty, b.ty
    if not (isinstance(sa, relax.TensorType) and isinstance(sb, relax.TensorType)):
        return False
    if sa.dtype != sb.dtype or sa.shape is None or sb.shape is None:
        return False
    return tvm_ffi.structural_equal(sa.shape, sb.shape)


def _fusable_pairs(block: relax.BindingBlock) -> dict[relax.Var, relax.VarBinding]:
    """The norms whose input is an add bound just before them in ``block``: norm var -> add binding."""
    pairs = {}
    for add, norm in itertools.pairwise(block.bindings):
        if not (isinstance(add, relax.VarBinding) and isinstance(norm, relax.VarBinding)):
            continue
        if not (_is_call(add.value, "relax.add") and _is_call(norm.value, "relax.nn.rms_norm")):
            continue
        if not norm.value.args[0].same_as(add.var) or not _same_tensor_type(*add.value.args):
            continue
        pairs[norm.var] = add
    return pairs


@mutator
class _Fuser(PyExprMutator):
    def __init__(self, mod: tvm.ir.IRModule):
        super().__init__(mod)
        self.pairs: dict[relax.Var, relax.VarBinding] = {}  # norm var -> its add's binding
        self.adds: set[relax.Var] = set()

    def visit_dataflow_block_(self, block: relax.DataflowBlock) -> relax.BindingBlock:
        self.pairs = _fusable_pairs(block)
        self.adds = {add.var for add in self.pairs.values()}
        return super().visit_dataflow_block_(block)

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        if binding.var in self.adds:
            return  # emitted with its norm, the next binding
        add = self.pairs.get(binding.var)
        if add is None:
            super().visit_var_binding_(binding)
            return
        a, b = (self.visit_expr(arg) for arg in add.value.args)
        weight = self.visit_expr(binding.value.args[1])
        attrs = binding.value.attrs
        both = self.builder_.call_te(_add_rms_norm, a, b, weight, axis=[int(x) for x in attrs.axes],
                                     epsilon=float(attrs.epsilon), primfunc_name_hint="add_rms_norm")
        for var, index in ((add.var, 0), (binding.var, 1)):
            value = relax.TupleGetItem(both, index)
            new = self.builder_.emit_output(value) if not isinstance(var, relax.DataflowVar) \
                else self.builder_.emit(value)
            self.set_var_remap(var, new)


@tvm.transform.module_pass(opt_level=0, name="edge_os.FuseAddRMSNorm")
def fuse_add_rms_norm(mod: tvm.ir.IRModule, _ctx: tvm.transform.PassContext) -> tvm.ir.IRModule:
    """Replace each ``relax.add`` + ``relax.nn.rms_norm`` of the sum by one two-output kernel."""
    return rewrite_relax_functions(mod, _Fuser)
