"""Run a Relax expression mutator over every Relax function of a module (the body of our passes)."""

from __future__ import annotations

import tvm
from tvm import relax


def rewrite_relax_functions(mod: tvm.ir.IRModule, mutator_class) -> tvm.ir.IRModule:
    """The module with each Relax function replaced by what ``mutator_class(mod)`` makes of it;
    other functions (TIR kernels) are kept as they are."""
    mutator = mutator_class(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            mutator.builder_.update_func(gvar, mutator.visit_expr(func))
    return mutator.builder_.get()
