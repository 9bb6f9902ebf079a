"""Fewer VM instructions per step: each symbolic shape, tensor view and reshape made once.

After memory planning a decode function allocates its intermediates as views of a few planned
storages, ``vm.alloc_tensor(storage, offset, shape, dtype)``, and reshapes them with
``vm.builtin.reshape(x, shape)``. The VM lowers every symbolic ``R.shape([n, 576])`` argument to
its own ``make_shape`` instruction, and every view and reshape is an instruction of its own,
although a SmolLM2 decode step has a dozen distinct shapes and a few dozen distinct views: 654
``make_shape``, 351 ``alloc_tensor`` and 302 ``reshape`` of its 2,159 instructions, each a call
through the FFI (~85 ns warm on Zen 5) that makes a new shape or tensor object, between the kernels.

Here the first occurrence of each symbolic shape is bound to a variable that later uses share, and
a view or reshape equal to one made before (same arguments) is that earlier one. Float arguments
are shared the same way: the KV cache's attention takes its scale as a float once per layer, and
``ComputePrimValue`` made each one a call (30 a SmolLM2 step, now one). A view is memory
the planner gave out: two equal views are the same bytes, and the planner never gives bytes to two
tensors alive at once; a reshape is a view of its input. So sharing the objects changes nothing a
kernel reads or writes. SmolLM2's decode: 2,159 -> 865 instructions, 0.3 ms less a 3 ms step.

Runs after ``LowerRuntimeBuiltin`` (views are ``relax.vm.alloc_tensor`` calls, reshapes
``vm.builtin.reshape`` ones) and before ``VMShapeLower`` (which turns each remaining shape
expression into a ``make_shape``).
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator
from tvm_ffi import StructuralKey  # equal by structure; variables (Relax or symbolic) by identity

from edge_os.compile.relax_rewrite import rewrite_relax_functions

_VIEW = "relax.vm.alloc_tensor"  # (storage, offset, shape, dtype)
_RESHAPE = "vm.builtin.reshape"  # an extern function: (tensor, shape)
_STORAGE = "relax.vm.alloc_storage"  # (size, ...): its shape is shared, each storage stays its own


def _callee(value: relax.Expr) -> str | None:
    """The name of the op or extern function a binding calls, if it is a call."""
    if not isinstance(value, relax.Call):
        return None
    if isinstance(value.op, tvm.ir.Op):
        return value.op.name
    return str(value.op.global_symbol) if isinstance(value.op, relax.ExternFunc) else None


def _computed_scalar(arg: relax.Expr) -> bool:
    """A scalar argument the VM computes with a call (``ComputePrimValue``): a float, or an
    expression of symbolic sizes. Integers sit in the VM's constant pool: no instruction to save."""
    return (isinstance(getattr(arg, "ty", None), tvm.ir.PrimType) and not isinstance(arg, relax.Var)
            and not isinstance(arg, tvm.tirx.IntImm))


def _passes_computed_scalars(value: relax.Expr) -> bool:
    return isinstance(value, relax.Call) and any(_computed_scalar(arg) for arg in value.args)


def _symbolic_shape(arg: relax.Expr) -> bool:
    """A shape the VM makes with a ``make_shape`` call (constant ones sit in its constant pool)."""
    return isinstance(arg, relax.ShapeExpr) and not all(isinstance(v, tvm.tirx.IntImm) for v in arg.values)


@mutator
class _Reuser(PyExprMutator):
    def __init__(self, mod: tvm.ir.IRModule):
        super().__init__(mod)
        # a symbolic shape or computed scalar -> the variable bound to it
        self.bound: dict[StructuralKey, relax.Var] = {}
        self.made: dict[tuple[str, StructuralKey], relax.Var] = {}  # (callee, arguments) of a view or reshape

    def visit_seq_expr_(self, seq: relax.SeqExpr) -> relax.Expr:
        """A nested sequence (a branch) sees what was made before it; what it makes stays in it."""
        outer = dict(self.bound), dict(self.made)
        try:
            return super().visit_seq_expr_(seq)
        finally:
            self.bound, self.made = outer

    def _shared(self, arg: relax.Expr) -> relax.Expr:
        """A symbolic shape or computed scalar as the variable of its first occurrence; anything
        else as it is."""
        if not (_symbolic_shape(arg) or _computed_scalar(arg)):
            return arg
        key = StructuralKey(arg)
        if key not in self.bound:
            self.bound[key] = self.builder_.emit(arg, name_hint="shape" if _symbolic_shape(arg) else "value")
        return self.bound[key]

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        callee = _callee(binding.value)
        if callee not in (_VIEW, _RESHAPE, _STORAGE) and not _passes_computed_scalars(binding.value):
            super().visit_var_binding_(binding)
            return
        call = self.visit_expr(binding.value)
        call = relax.Call(call.op, [self._shared(arg) for arg in call.args], call.attrs, call.ty_args)
        if callee not in (_VIEW, _RESHAPE):  # a storage stays its own, as does any other call
            self.set_var_remap(binding.var, self.builder_.emit(call, name_hint=binding.var.name))
            return
        key = (callee, StructuralKey(list(call.args)))
        if key not in self.made:
            self.made[key] = self.builder_.emit(call, name_hint=binding.var.name)
        self.set_var_remap(binding.var, self.made[key])


@tvm.transform.module_pass(opt_level=0, name="edge_os.ReuseShapesAndViews")
def reuse_shapes_and_views(mod: tvm.ir.IRModule, _ctx: tvm.transform.PassContext) -> tvm.ir.IRModule:
    """Make each symbolic shape, planned tensor view and reshape once per function (module docstring)."""
    return rewrite_relax_functions(mod, _Reuser)
