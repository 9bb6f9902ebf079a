"""The default CPU schedule and fast SiLU/GELU: same numbers as numpy, one vectorized serial loop nest."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, s_tir

from edge_os.compile.pipeline import build_pipeline
from edge_os.compile.schedule import LANES

HOST = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
HIDDEN, INTERMEDIATE = 64, 128


def _block() -> tvm.ir.IRModule:
    """RMSNorm, SiLU(gate) * up and a residual add: the small operators of a Llama layer, and
    Gemma 3's GeGLU (tanh-approximated GELU)."""
    bb = relax.BlockBuilder()
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType((n, HIDDEN), "float32"))
    w = relax.Var("w", relax.TensorType((HIDDEN,), "float32"))
    gate_up = relax.Var("gate_up", relax.TensorType((n, 2 * INTERMEDIATE), "float32"))
    with bb.function("main", [x, w, gate_up]):
        with bb.dataflow():
            normed = bb.emit(relax.op.nn.rms_norm(x, w, axes=[-1], epsilon=1e-5))
            parts = bb.emit(relax.op.split(gate_up, 2, axis=-1))
            act = bb.emit(relax.op.nn.silu(relax.TupleGetItem(parts, 0)) * relax.TupleGetItem(parts, 1))
            geglu = bb.emit(relax.op.nn.gelu_tanh(relax.TupleGetItem(parts, 0)) * relax.TupleGetItem(parts, 1))
            out = bb.emit_output(relax.Tuple([normed + x, act, geglu]))
        bb.emit_func_output(out)
    return bb.get()


def _numpy(x, w, gate_up):
    normed = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * w
    gate, up = np.split(gate_up.astype(np.float64), 2, axis=-1)
    gelu = 0.5 * gate * (1 + np.tanh(np.sqrt(2 / np.pi) * (gate + 0.044715 * gate**3)))
    return normed + x, gate / (1 + np.exp(-gate)) * up, gelu * up


def test_small_operators_match_numpy():
    vm = relax.VirtualMachine(tvm.compile(_block(), target=HOST, relax_pipeline=build_pipeline(HOST)), tvm.cpu())
    rng = np.random.default_rng(0)
    for n in (1, 3, 64):
        args = [rng.standard_normal((n, HIDDEN)), 1 + 0.1 * rng.standard_normal(HIDDEN),
                4 * rng.standard_normal((n, 2 * INTERMEDIATE))]
        args = [a.astype(np.float32) for a in args]
        got = vm["main"](*[tvm.runtime.tensor(a) for a in args])
        for g, want in zip(got, _numpy(*args), strict=True):
            np.testing.assert_allclose(g.numpy(), want, rtol=2e-6, atol=2e-6)


def test_small_operators_run_serial_and_vectorized():
    lowered = build_pipeline(HOST)(_block())
    scripts = [f.script() for f in lowered.functions.values()
               if isinstance(f, tvm.tirx.PrimFunc) and "tirx.is_host_func" not in f.attrs]
    assert scripts and all("T.parallel" not in s for s in scripts)
    assert all("T.vectorized" in s for s in scripts)
    # no libm call per element (LLVM cannot vectorize expf/tanhf)
    assert not any("T.exp(" in s or "T.tanh(" in s for s in scripts)


def _reductions_outside_vectors(func: tvm.tirx.PrimFunc) -> list[str]:
    """Blocks that sum more than one vector's worth of values with no vectorized loop around them."""
    found = []

    def visit(stmt, vectorized: bool) -> None:
        if isinstance(stmt, tvm.tirx.For):
            visit(stmt.body, vectorized or stmt.kind == tvm.tirx.ForKind.VECTORIZED)
        elif isinstance(stmt, s_tir.SBlockRealize):
            block = stmt.block
            summed = 1
            for var in block.iter_vars:
                if var.iter_type != 0:
                    summed *= int(var.dom.extent)
            if summed > LANES and not vectorized:
                found.append(block.name_hint)
            for child in (block.init, block.body):
                if child is not None:
                    visit(child, vectorized)
        elif isinstance(stmt, tvm.tirx.SeqStmt):
            for child in stmt:
                visit(child, vectorized)
        elif hasattr(stmt, "body"):
            visit(stmt.body, vectorized)

    visit(func.body, False)
    return found


def test_row_sums_are_vectorized():
    # RMSNorm's sum of squares over 64 values: one chain of 64 dependent adds if left scalar
    lowered = build_pipeline(HOST)(_block())
    norms = [f for g, f in lowered.functions.items() if "rms_norm" in g.name_hint]
    assert norms
    for func in norms:
        assert not _reductions_outside_vectors(func), func.script()
