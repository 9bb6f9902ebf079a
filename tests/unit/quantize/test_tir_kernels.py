"""The portable TIR kernels of every format agree with the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from edge_os.quantize.formats import FORMATS
from edge_os.quantize.tir import matmul_kernel, take_kernel
from tests.gguf_craft import crafted_weight

TARGET = tvm.target.Target({"kind": "llvm"})


def _run(func, args, out_shape):
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=TARGET)
    dev = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros(out_shape, np.float32), dev)
    lib["main"](*[tvm.runtime.tensor(a, dev) for a in args], out)
    return out.numpy()


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("m", [1, 3])
def test_matmul_kernel_matches_reference(fmt, m):
    rng = np.random.default_rng(m)
    n, k = 24, 256
    qw = crafted_weight(fmt, n, k, rng)
    x = rng.standard_normal((m, k)).astype(np.float32)
    got = _run(matmul_kernel(FORMATS[fmt], n, k), [x, *qw.arrays.values()], (m, n))
    dense = qw.dequantize()
    bound = 1e-5 * (np.abs(x) @ np.abs(dense).T) + 1e-6  # float rounding, whatever the scales' sizes
    assert np.all(np.abs(got - x @ dense.T) <= bound)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_take_kernel_matches_reference(fmt):
    rng = np.random.default_rng(5)
    qw = crafted_weight(fmt, 40, 256, rng)
    ids = np.array([3, 0, 39, 3], np.int32)
    got = _run(take_kernel(FORMATS[fmt], 40, 256), [ids, *qw.arrays.values()], (4, 256))
    np.testing.assert_array_equal(got, qw.dequantize()[ids])
