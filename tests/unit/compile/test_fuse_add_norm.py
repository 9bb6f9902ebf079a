"""A residual add and the RMSNorm of its sum: one kernel, both results as numpy computes them."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from edge_os.compile.pipeline import build_pipeline

HOST = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
HIDDEN = 64


def _layer_tail(residual_shape) -> tvm.ir.IRModule:
    """``s = x + y; h = rms_norm(s)``, then both used again (as the residual stream and the next
    block's input are); ``y`` of ``residual_shape``."""
    bb = relax.BlockBuilder()
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType((n, HIDDEN), "float32"))
    y = relax.Var("y", relax.TensorType(residual_shape(n), "float32"))
    w = relax.Var("w", relax.TensorType((HIDDEN,), "float32"))
    with bb.function("main", [x, y, w]):
        with bb.dataflow():
            total = bb.emit(x + y)
            normed = bb.emit(relax.op.nn.rms_norm(total, w, axes=[-1], epsilon=1e-5))
            out = bb.emit_output(relax.Tuple([total * normed, normed]))
        bb.emit_func_output(out)
    return bb.get()


def _kernels(mod: tvm.ir.IRModule) -> set[str]:
    lowered = build_pipeline(HOST)(mod)
    return {gvar.name_hint for gvar, f in lowered.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc) and "shape_func" not in gvar.name_hint}


def _run(mod: tvm.ir.IRModule, *args: np.ndarray) -> list[np.ndarray]:
    vm = relax.VirtualMachine(tvm.compile(mod, target=HOST, relax_pipeline=build_pipeline(HOST)), tvm.cpu())
    return [t.numpy() for t in vm["main"](*[tvm.runtime.tensor(a) for a in args])]


def _numpy(x, y, w):
    total = x.astype(np.float64) + y
    normed = total / np.sqrt(np.mean(total * total, axis=-1, keepdims=True) + 1e-5) * w
    return total * normed, normed


def test_an_add_and_the_norm_of_its_sum_are_one_kernel():
    assert _kernels(_layer_tail(lambda n: (n, HIDDEN))) == {"add_rms_norm", "fused_multiply"}
    rng = np.random.default_rng(0)
    for n in (1, 4, 33):
        x, y = (rng.standard_normal((n, HIDDEN)).astype(np.float32) for _ in range(2))
        w = (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
        for got, want in zip(_run(_layer_tail(lambda n: (n, HIDDEN)), x, y, w), _numpy(x, y, w), strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


def test_a_broadcasting_add_is_left_as_it_is():
    """A bias-like add (shapes differ) is no residual stream: it keeps its own kernel."""
    mod = _layer_tail(lambda n: (HIDDEN,))
    assert "add_rms_norm" not in _kernels(mod)
    rng = np.random.default_rng(1)
    x, y, w = (rng.standard_normal(shape).astype(np.float32) for shape in ((3, HIDDEN), (HIDDEN,), (HIDDEN,)))
    for got, want in zip(_run(mod, x, y, w), _numpy(x, y, w), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
