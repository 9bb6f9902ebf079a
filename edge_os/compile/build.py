"""Compile one model for one target into a shared library the runtime loads."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import tvm
import tvm_ffi

from edge_os.compile.kernels import MODEL_ATTR
from edge_os.compile.kv_cache import kv_cache_factory
from edge_os.compile.link import export_options
from edge_os.compile.pipeline import build_pipeline
from edge_os.quantize.modules import quantize_model

log = logging.getLogger(__name__)

# Ctrl-C while TVM runs a Python pass crosses TVM's C++ as an error named "KeyboardInterrupt";
# registered, it comes back to Python as KeyboardInterrupt (else as a bare RuntimeError, which
# the scheduling passes would even catch and carry on from).
tvm_ffi.error.register_error("KeyboardInterrupt", KeyboardInterrupt)


@dataclass(frozen=True)
class CompileLimits:
    """The largest calls the library is planned for. Memory for intermediate tensors is then
    planned once at these sizes and reused by every call; without bounds the VM keeps a buffer
    set for every prompt length it has seen, and a long-running service grows without end."""

    prefill_chunk: int = 256  # tokens per prefill (and embed) call
    max_batch: int = 32  # sequences per decode call

    def to_json(self) -> dict:
        return {"prefill_chunk": self.prefill_chunk, "max_batch": self.max_batch}


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


def model_facts(config) -> dict:
    """What kernel replacements may need to know about the model (``edge_os.compile.kernels``)."""
    facts = {"rope_theta": float(config.rope_theta), "rope_scaled": bool(config.rope_scaling)}
    if getattr(config, "sliding_window", 0):  # the window of the cache's mha_sliding layers (Gemma 3)
        facts["sliding_window"] = int(config.sliding_window)
    return facts


def export_model(model_class, config, formats_by_name: dict[str, str], scale_dtype: str, tvm_target,
                 limits: CompileLimits = CompileLimits(), kv_dtype: str = "auto"):
    """Build the nn model, quantize it, and export the Relax module and its parameter list."""
    model = model_class(config, kv_cache_factory(tvm_target, kv_dtype))
    model = quantize_model(model, formats_by_name, scale_dtype)
    mod, named_params = model.export_tvm(spec=model.get_default_spec())
    mod = mod.with_attr(MODEL_ATTR, model_facts(config))
    bounds = {"embed": {"seq_len": limits.prefill_chunk}, "prefill": {"seq_len": limits.prefill_chunk},
              "prefill_ragged": {"seq_len": limits.prefill_chunk, "num_logits": limits.max_batch},
              "prefill_all": {"seq_len": limits.prefill_chunk}, "decode": {"batch_size": limits.max_batch}}
    for name, bound in bounds.items():
        mod[name] = mod[name].with_attr("tir_var_upper_bound", bound)
    params = [ParamSpec(name, tuple(int(d) for d in p.shape), str(p.dtype)) for name, p in named_params]
    return mod, params


def compile_model(model_class, config, formats_by_name: dict[str, str], scale_dtype: str,
                  tvm_target_json: dict, library_path: Path, cross_cc: str | None = None,
                  activations: str = "float32", limits: CompileLimits = CompileLimits(),
                  kv_dtype: str = "auto", device_libs: tuple[str, ...] = ()) -> list[ParamSpec]:
    """Compile and write ``library_path`` (``.so``); returns the parameters it expects.
    ``activations`` is how far decode kernels may round activations (``build_pipeline``); calls
    must stay within ``limits``; ``kv_dtype`` is what the KV cache stores
    (``edge_os.compile.kv_cache.KV_DTYPES``); ``cross_cc`` and ``device_libs`` say how it is
    linked (``edge_os.compile.link``)."""
    tvm_target = tvm.target.Target(tvm_target_json)
    mod, params = export_model(model_class, config, formats_by_name, scale_dtype, tvm_target, limits, kv_dtype)
    executable = tvm.compile(mod, target=tvm_target, relax_pipeline=build_pipeline(tvm_target, activations))
    executable.export_library(str(library_path), **export_options(cross_cc, device_libs))
    return params
