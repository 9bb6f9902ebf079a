"""Compile one model for one target into a shared library the runtime loads."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm.relax.frontend import nn

from edge_os.compile.kv_cache import kv_cache_factory
from edge_os.compile.pipeline import build_pipeline
from edge_os.quantize.modules import quantize_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParamSpec:
    """A parameter the compiled library takes, in order."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def resolve_tvm_target(tvm_target: dict) -> dict:
    """Fill in ``mcpu = "native"`` and ``num-cores = 0`` from this machine."""
    resolved = dict(tvm_target)
    if resolved.get("mcpu") == "native":
        resolved["mcpu"] = tvm.get_global_func("target.llvm_get_system_cpu")()
    if resolved.get("num-cores") == 0:
        resolved["num-cores"] = os.cpu_count() or 1
    return resolved


def export_model(model_class, config, formats_by_name: dict[str, str], scale_dtype: str, tvm_target,
                 kv_dtype: str = "auto"):
    """Build the nn model, quantize it, and export the Relax module and its parameter list."""
    model = model_class(config, kv_cache_factory(tvm_target, kv_dtype))
    model = quantize_model(model, formats_by_name, scale_dtype)
    mod, named_params = model.export_tvm(spec=model.get_default_spec())
    params = [ParamSpec(name, tuple(int(d) for d in p.shape), str(p.dtype)) for name, p in named_params]
    return mod, params


def compile_model(model_class, config, formats_by_name: dict[str, str], scale_dtype: str,
                  tvm_target_json: dict, library_path: Path, cross_cc: str | None = None,
                  kv_dtype: str = "auto") -> list[ParamSpec]:
    """Compile and write ``library_path`` (``.so``); returns the parameters it expects.
    ``kv_dtype``: what the KV cache stores (``edge_os.compile.kv_cache.KV_DTYPES``)."""
    tvm_target = tvm.target.Target(tvm_target_json)
    mod, params = export_model(model_class, config, formats_by_name, scale_dtype, tvm_target, kv_dtype)
    executable = tvm.compile(mod, target=tvm_target, relax_pipeline=build_pipeline(tvm_target))
    kwargs = {"cc": cross_cc} if cross_cc else {}
    executable.export_library(str(library_path), **kwargs)
    return params
