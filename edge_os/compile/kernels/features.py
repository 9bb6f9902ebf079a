"""What a TVM target's CPU can do: the predicates kernel libraries register under.

LLVM answers for the target itself (its ``mcpu``, ``mtriple`` and ``mattr``), not for the machine
that compiles, so a cross target (``targets/rpi5.toml``) reports the features of the device.
"""

from __future__ import annotations

import functools

import tvm


@functools.cache
def _features(target_json: str) -> frozenset[str]:
    query = tvm.get_global_func("target.llvm_get_cpu_features")
    return frozenset(str(name) for name in dict(query(tvm.target.Target(target_json))))


def cpu_features(target: tvm.target.Target) -> frozenset[str]:
    """LLVM feature names of the target's CPU (``avx2``, ``fma``, ``neon``, ``dotprod`` ...)."""
    if target.kind.name != "llvm":
        return frozenset()
    return _features(str(target))


def arch(target: tvm.target.Target) -> str:
    """The target's architecture, ``x86_64`` or ``aarch64`` (no triple means this machine's)."""
    triple = str(target.attrs.get("mtriple", "")) or tvm.get_global_func("target.llvm_get_system_triple")()
    return triple.split("-")[0].replace("arm64", "aarch64")


def has(target: tvm.target.Target, *features: str) -> bool:
    return set(features) <= cpu_features(target)
