"""Target-specific kernels that replace the portable reference kernels of quantized operators.

Reference kernels carry the ``edge_os.kernel`` attribute (operator, format, static shape). A
kernel library registers, per target predicate, builders that return a faster ``PrimFunc`` with
the same signature, or ``None`` when they do not handle that shape. The builders see the
attribute plus ``scale_dtype`` (float32 or float16), read from the reference kernel's arguments,
and ``activations``: ``"float32"`` (exact, the default) or ``"int8"`` (activations rounded to
int8 per group of 32 in the decode path, as llama.cpp does; faster, not bit-comparable with the
prefill path).
``edge_os.compile.kernels.library`` imports every family so that they register.
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


ACTIVATIONS = ("float32", "int8")


def families(target: tvm.target.Target) -> list[tuple[str, KernelBuilder]]:
    """``(family name, builder)`` of every registered family that accepts ``target``, in order."""
    return [(builder.__module__.rsplit(".", 1)[-1], builder) for applies, builder in _LIBRARIES if applies(target)]


def select_kernels(mod: tvm.ir.IRModule, target: tvm.target.Target, activations: str = "float32") -> tvm.ir.IRModule:
    """Replace each tagged reference kernel with the first registered fast one for ``target``."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}, not {activations!r}")
    libraries = families(target)
    if not libraries:
        return mod
    updates = {}
    for gvar, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc) or func.attrs is None or KERNEL_ATTR not in func.attrs:
            continue
        info = _kernel_info(func) | {"activations": activations}
        for family, builder in libraries:
            fast = builder(info, target)
            if fast is not None:
                fast = fast.with_attrs({
                    "global_symbol": gvar.name_hint,
                    KERNEL_ATTR: func.attrs[KERNEL_ATTR],
                    "edge_os.kernel_impl": family,
                })
                updates[gvar] = fast
                break
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod


def _kernel_info(func: tirx.PrimFunc) -> dict:
    """The ``edge_os.kernel`` attribute as plain Python values, plus the scale dtype."""
    info = {}
    for key, value in dict(func.attrs[KERNEL_ATTR]).items():
        info[str(key)] = value if isinstance(value, int) else (int(value) if hasattr(value, "value") else str(value))
    names = [str(p.name) for p in func.params]
    info["scale_dtype"] = str(func.params[names.index("scale")].dtype) if "scale" in names else "float32"
    return info
