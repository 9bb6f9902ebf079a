"""The slice of TVM that running a package needs, reached through ``tvm_ffi``.

A process that only runs packages (``generate``, ``chat``, ``serve``, ``demo``, the benchmarks)
calls :func:`use_runtime_only_tvm` first. It then never imports the
``tvm`` Python package (compiler, IR, ~400 modules): the runner loads ``libtvm_runtime.so``, which
registers the VM and the KV-cache builtins, and talks to it through ``tvm_ffi``. That takes
0.17 s instead of 0.7 s and about 42 MiB less resident memory. A process that compiles (pack,
tests) imports ``tvm`` as usual, which registers the same functions from the compiler library.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from edge_os.package.reader import ALIGNMENT, aligned_empty
from edge_os.runtime.ffi import tvm_ffi

_PROBE = "vm.builtin.kv_state_add_sequence"  # registered once a TVM library is loaded


def use_runtime_only_tvm() -> None:
    """Run packages with TVM's runtime library alone. Call before the first engine loads in a
    process that will not compile anything afterwards (a later ``import tvm`` then gets the
    runtime library too, and cannot compile)."""
    if "tvm" not in sys.modules:
        os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")


def ensure_loaded() -> None:
    """Make TVM's runtime functions available: nothing to do if a TVM library is loaded already;
    the runtime library alone in runtime-only processes; else the whole ``tvm`` package."""
    if tvm_ffi.get_global_func(_PROBE, allow_missing=True) is not None:
        return
    if os.environ.get("TVM_USE_RUNTIME_LIB") == "1":
        spec = importlib.util.find_spec("tvm")
        root = Path(next(iter(spec.submodule_search_locations)))
        ctypes.CDLL(str(root / "lib" / "libtvm_runtime.so"), mode=ctypes.RTLD_GLOBAL)
    else:
        import tvm  # noqa: F401  (loads the compiler library, which includes the runtime)


def to_tensor(array: np.ndarray) -> tvm_ffi.Tensor:
    """A TVM tensor on ``array``'s memory (no copy) when it is C-contiguous and aligned, else on an
    aligned copy; the tensor keeps that memory alive."""
    if array.ctypes.data % ALIGNMENT or not array.flags.c_contiguous:
        copy = aligned_empty(array.shape, array.dtype)
        copy[...] = array
        array = copy
    return tvm_ffi.from_dlpack(array, require_alignment=ALIGNMENT)


def to_numpy(tensor: tvm_ffi.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor (no copy); it keeps the tensor alive."""
    return np.from_dlpack(tensor)


def shape(values) -> tvm_ffi.Shape:
    return tvm_ffi.Shape([int(v) for v in values])
