"""Target-specific kernels that replace the portable reference kernels of quantized operators.

Reference kernels carry the ``edge_os.kernel`` attribute (operator, format, static shape). A
kernel library registers, per target predicate, builders that return a faster ``PrimFunc`` with
the same signature, or ``None`` when they do not handle that shape.
"""

from __future__ import annotations

from typing import Callable

import tvm
from tvm import tirx

from edge_os.quantize.tir import KERNEL_ATTR

# (target -> applies?, kernel info dict -> PrimFunc | None)
KernelBuilder = Callable[[dict, tvm.target.Target], "tirx.PrimFunc | None"]
_LIBRARIES: list[tuple[Callable[[tvm.target.Target], bool], KernelBuilder]] = []


def register(applies: Callable[[tvm.target.Target], bool], builder: KernelBuilder) -> None:
    _LIBRARIES.append((applies, builder))


def select_kernels(mod: tvm.ir.IRModule, target: tvm.target.Target) -> tvm.ir.IRModule:
    """Replace each tagged reference kernel with the first registered fast one for ``target``."""
    libraries = [builder for applies, builder in _LIBRARIES if applies(target)]
    if not libraries:
        return mod
    updates = {}
    for gvar, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc) or func.attrs is None or KERNEL_ATTR not in func.attrs:
            continue
        info = {k: (v if isinstance(v, str) else int(v)) for k, v in dict(func.attrs[KERNEL_ATTR]).items()}
        info = {k: str(v) if not isinstance(v, int) else v for k, v in info.items()}
        for builder in libraries:
            fast = builder(info, target)
            if fast is not None:
                updates[gvar] = fast.with_attr("global_symbol", gvar.name_hint)
                break
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod
