"""Shapes, views and reshapes made once per function (``edge_os.compile.vm_reuse``): fewer VM
instructions, the same results."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tvm
from tvm import relax, tirx
from tvm.script import relax as R

from edge_os.compile import pipeline

LAYERS = 4
SIDE = 16  # each row a SIDE x SIDE matrix, transposed once per layer


def layered_module() -> tvm.ir.IRModule:
    """A function of a symbolic batch ``n`` shaped like a decoder's steps: per layer, kernels whose
    results the planner puts in a few shared buffers, and reshapes between them."""
    bb = relax.BlockBuilder()
    n = tirx.Var("n", "int64")
    x = relax.Var("x", R.Tensor((n, SIDE * SIDE), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            h = x
            for layer in range(LAYERS):
                a = bb.emit(relax.op.add(h, relax.const(1.0 + layer, "float32")))
                b = bb.emit(relax.op.reshape(a, (n, SIDE, SIDE)))
                c = bb.emit(relax.op.permute_dims(b, [0, 2, 1]))  # wrong if written over its input
                d = bb.emit(relax.op.reshape(c, (n, SIDE * SIDE)))
                h = bb.emit(relax.op.subtract(d, x))
            out = bb.emit_output(h)
        bb.emit_func_output(out)
    return bb.get()


def compiled(module: tvm.ir.IRModule):
    target = tvm.target.Target("llvm")
    return tvm.compile(module, target=target, relax_pipeline=pipeline.build_pipeline(target))


def calls(executable) -> list[str]:
    """The call instructions of ``main``, each as its callee and arguments."""
    text = executable.as_text().split("@main:")[1].split("\n@")[0]
    return [line.split("dst:")[0].strip() for line in text.splitlines() if line.strip().startswith("call")]


@pytest.fixture(scope="module")
def both():
    with pytest.MonkeyPatch.context() as monkeypatch:  # the pipeline without the pass
        monkeypatch.setattr(pipeline, "reuse_shapes_and_views", tvm.transform.Sequential([]))
        plain = compiled(layered_module())
    return plain, compiled(layered_module())


def test_each_shape_view_and_reshape_is_made_once(both):
    plain, reused = both
    for instruction in ("vm.builtin.make_shape", "vm.builtin.alloc_tensor", "vm.builtin.reshape"):
        made = [c for c in calls(reused) if c.split()[1] == instruction]
        assert made, f"no {instruction} left to check"
        assert len(made) == len(set(made)), f"{instruction} made twice: {collections.Counter(made).most_common(1)}"
    # without the pass each layer makes them again
    assert len(calls(reused)) < len(calls(plain)) - 2 * LAYERS


@pytest.mark.parametrize("rows", [1, 3])
def test_results_are_bit_for_bit_those_without_it(both, rows):
    x = np.random.default_rng(rows).standard_normal((rows, SIDE * SIDE)).astype(np.float32)
    outputs = []
    for executable in both:
        vm = relax.VirtualMachine(executable, tvm.cpu())
        outputs.append(vm["main"](tvm.runtime.tensor(x)).numpy())
    expected = x
    for layer in range(LAYERS):
        square = (expected + np.float32(1.0 + layer)).reshape(rows, SIDE, SIDE)
        expected = square.transpose(0, 2, 1).reshape(rows, SIDE * SIDE) - x
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_allclose(outputs[1], expected, rtol=1e-6)


def test_shapes_that_print_alike_but_differ_stay_apart():
    """Two sizes both named ``n``: ``R.shape([n, 2, 4])`` twice in the text, two shapes at run time."""
    bb = relax.BlockBuilder()
    rows_x, rows_y = tirx.Var("n", "int64"), tirx.Var("n", "int64")
    x = relax.Var("x", R.Tensor((rows_x, 8), "float32"))
    y = relax.Var("y", R.Tensor((rows_y, 8), "float32"))
    with bb.function("main", [x, y]):
        with bb.dataflow():
            a = bb.emit(relax.op.reshape(relax.op.add(x, x), (rows_x, 2, 4)))
            b = bb.emit(relax.op.reshape(relax.op.add(y, y), (rows_y, 2, 4)))
            out = bb.emit_output(relax.Tuple([a, b]))
        bb.emit_func_output(out)
    executable = compiled(bb.get())
    xs, ys = np.ones((1, 8), np.float32), np.ones((3, 8), np.float32)
    a, b = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(xs), tvm.runtime.tensor(ys))
    assert (a.shape, b.shape) == ((1, 2, 4), (3, 2, 4))
    np.testing.assert_array_equal(b.numpy(), np.full((3, 2, 4), 2.0, np.float32))


@tvm.register_global_func("edge_os.testing.scaled", override=True)
def _scaled(x, factor):
    return tvm.runtime.tensor(x.numpy() * np.float32(factor))


def test_a_float_argument_is_computed_once_per_value():
    """A float passed to a packed function (as the KV cache's attention takes its scale, once per
    layer) is a VM call of its own; equal ones share the first one's result."""
    factors = [0.5, 0.5, 0.25, 0.5]
    bb = relax.BlockBuilder()
    x = relax.Var("x", R.Tensor((4,), "float32"))
    with bb.function("main", [x]):
        h = x
        for factor in factors:
            h = bb.emit(relax.Call(relax.ExternFunc("edge_os.testing.scaled"), [h, relax.prim_value(factor)],
                                   ty_args=[R.Tensor((4,), "float32")]))
        bb.emit_func_output(h)
    executable = compiled(bb.get())
    computed = [c for c in calls(executable) if "compute_symbolic_expr" in c.split()[1]]
    assert len(computed) == len(set(factors)), computed
    x = np.arange(4, dtype=np.float32)
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_array_equal(got, x * np.float32(0.5) ** 3 * np.float32(0.25))
