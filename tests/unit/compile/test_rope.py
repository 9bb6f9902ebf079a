"""The CPU RoPE kernel against TVM's own ``fused_rope`` and against numpy's rotate-half RoPE."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm.relax.frontend.nn.llm.position_embedding import llama_rope_with_position_map

from edge_os.compile.kernels.rope_cpu import replacement

HOST = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
QH, KVH, D, THETA = 9, 3, 64, 100000.0
PLAIN = {"rope_theta": THETA, "rope_scaled": False}


def _tvm_rope(dtype="float32", theta=THETA, scaling=None):
    return llama_rope_with_position_map(theta, 1.0, D, QH, KVH, dtype, scaling or {}, D).with_attr(
        "global_symbol", "fused_rope")


def _run(func, qkv: np.ndarray, positions: np.ndarray, apply_rope: int):
    kernel = tvm.compile(tvm.IRModule({"fused_rope": func}), target=HOST)["fused_rope"]
    seq = qkv.shape[0]
    outs = [tvm.runtime.empty((seq, heads, D), str(qkv.dtype)) for heads in (QH, KVH, KVH)]
    kernel(tvm.runtime.tensor(qkv), tvm.runtime.tensor(positions), *outs, apply_rope)
    return [o.numpy() for o in outs]


def _numpy_rope(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    inv = 1.0 / THETA ** (np.arange(0, D, 2) / D)
    angle = positions[:, None].astype(np.float64) * inv[None, :]
    cos, sin = np.cos(np.concatenate([angle, angle], 1)), np.sin(np.concatenate([angle, angle], 1))
    rotated = np.concatenate([-x[..., D // 2:], x[..., : D // 2]], -1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


@pytest.mark.parametrize("seq", [1, 3, 37])
@pytest.mark.parametrize("apply_rope", [1, 0])
def test_matches_tvms_kernel_and_numpy(seq, apply_rope):
    rng = np.random.default_rng(seq)
    qkv = rng.standard_normal((seq, QH + 2 * KVH, D)).astype(np.float32)
    positions = rng.integers(0, 8000, seq).astype(np.int32)
    ours = _run(replacement(_tvm_rope(), PLAIN), qkv, positions, apply_rope)
    theirs = _run(_tvm_rope(), qkv, positions, apply_rope)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    q, k, v = qkv[:, :QH], qkv[:, QH:QH + KVH], qkv[:, QH + KVH:]
    if apply_rope:
        q, k = _numpy_rope(q, positions), _numpy_rope(k, positions)
    # float32 angles of positions up to 8000 are exact to ~1e-3 rad: the same for TVM's kernel.
    for got, want in zip(ours, (q, k, v), strict=True):
        np.testing.assert_allclose(got, want, atol=3e-3 if apply_rope else 0)


def test_float16_rows_are_rotated_in_float32():
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((5, QH + 2 * KVH, D)).astype(np.float16)
    positions = np.arange(5, dtype=np.int32)
    ours = _run(replacement(_tvm_rope("float16"), PLAIN), qkv, positions, 1)
    theirs = _run(_tvm_rope("float16"), qkv, positions, 1)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=2e-3)


def test_scaled_rope_and_other_kernels_are_left_to_tvm():
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192}
    assert replacement(_tvm_rope(scaling=llama3), {"rope_theta": THETA, "rope_scaled": True}) is None
    assert replacement(_tvm_rope(), {}) is None  # no model facts: nothing is assumed
    other = _tvm_rope().with_attr("global_symbol", "something_else")
    assert replacement(other, PLAIN) is None
