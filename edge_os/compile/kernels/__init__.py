"""Target-specific kernels that replace the portable reference kernels of quantized operators.

Reference kernels carry the ``edge_os.kernel`` attribute (operator, format, static shape). A
kernel library registers, per target predicate, builders that return a faster ``PrimFunc`` with
the same signature, or ``None`` when they do not handle that shape. The builders see the
attribute plus ``scale_dtype`` (float32 or float16), read from the reference kernel's arguments,
and ``activations``: how the decode path may round activations, per group of 32: ``"float32"``
(not at all), ``"int16"`` (to 1/65534 of the group maximum) or ``"int8"`` (to 1/254, as llama.cpp
does). A family without such a path uses float32.
``edge_os.compile.kernels.library`` imports every family so that they register.

Kernels that TVM itself adds (the KV cache's attention and RoPE) carry no tag; a library can
register a *replacement* for them, which sees the function and the model facts that the compile
step attaches to the module (attribute ``edge_os.model``, e.g. ``rope_theta``) and returns one
with the same signature.
"""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import tirx

from edge_os.compile import ACTIVATIONS
from edge_os.quantize.tir import KERNEL_ATTR

# (target -> applies?, kernel info dict -> PrimFunc | None)
KernelBuilder = Callable[[dict, tvm.target.Target], "tirx.PrimFunc | None"]
_LIBRARIES: list[tuple[Callable[[tvm.target.Target], bool], KernelBuilder]] = []


# (target -> applies?, (TVM's PrimFunc, model facts) -> PrimFunc | None)
Replacement = Callable[[tirx.PrimFunc, dict], "tirx.PrimFunc | None"]
MODEL_ATTR = "edge_os.model"
_REPLACEMENTS: list[tuple[Callable[[tvm.target.Target], bool], Replacement]] = []


def register(applies: Callable[[tvm.target.Target], bool], builder: KernelBuilder) -> None:
    _LIBRARIES.append((applies, builder))


def register_replacement(applies: Callable[[tvm.target.Target], bool], replacement: Replacement) -> None:
    _REPLACEMENTS.append((applies, replacement))




def families(target: tvm.target.Target) -> list[tuple[str, KernelBuilder]]:
    """``(family name, builder)`` of every registered family that accepts ``target``, in order."""
    return [(_family(builder), builder) for applies, builder in _LIBRARIES if applies(target)]


def _family(function) -> str:
    return function.__module__.rsplit(".", 1)[-1]


def select_kernels(mod: tvm.ir.IRModule, target: tvm.target.Target, activations: str = "float32") -> tvm.ir.IRModule:
    """Swap each tagged reference kernel for the first fast one a family builds for ``target``,
    and each of TVM's own kernels for a registered replacement."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}, not {activations!r}")
    updates = {}
    model = _model_facts(mod)
    for gvar, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        if func.attrs is not None and KERNEL_ATTR in func.attrs:
            fast = _fast_kernel(func, target, activations)
            if fast is not None:
                fast = fast.with_attrs({"global_symbol": gvar.name_hint, KERNEL_ATTR: func.attrs[KERNEL_ATTR]})
        else:
            fast = _replacement(func, target, model)
        if fast is not None:
            updates[gvar] = fast
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod


def _fast_kernel(func: tirx.PrimFunc, target: tvm.target.Target, activations: str) -> tirx.PrimFunc | None:
    info = _kernel_info(func) | {"activations": activations}
    for family, builder in families(target):
        fast = builder(info, target)
        if fast is not None:
            return fast.with_attr("edge_os.kernel_impl", family)
    return None


def _replacement(func: tirx.PrimFunc, target: tvm.target.Target, model: dict) -> tirx.PrimFunc | None:
    for applies, replace in _REPLACEMENTS:
        if applies(target):
            fast = replace(func, model)
            if fast is not None:
                return fast.with_attr("edge_os.kernel_impl", _family(replace))
    return None


def _model_facts(mod: tvm.ir.IRModule) -> dict:
    """The ``edge_os.model`` module attribute as plain Python values (empty if absent)."""
    facts = mod.attrs.get(MODEL_ATTR) if mod.attrs is not None else None
    return {str(k): (v.value if hasattr(v, "value") else v) for k, v in dict(facts or {}).items()}


def _kernel_info(func: tirx.PrimFunc) -> dict:
    """The ``edge_os.kernel`` attribute as plain Python values, plus the scale dtype."""
    info = {}
    for key, value in dict(func.attrs[KERNEL_ATTR]).items():
        info[str(key)] = value if isinstance(value, int) else (int(value) if hasattr(value, "value") else str(value))
    names = [str(p.name) for p in func.params]
    info["scale_dtype"] = str(func.params[names.index("scale")].dtype) if "scale" in names else "float32"
    return info
