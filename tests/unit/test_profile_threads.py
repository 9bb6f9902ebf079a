"""tools/profile_threads.py names samples in a TVM library whose parallel bodies have no symbols."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import tvm
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

TOOL = Path(__file__).resolve().parents[2] / "tools" / "profile_threads.py"


@pytest.fixture(scope="module")
def tool():
    """The tool, loaded once from its file (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("profile_threads", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def names(tool, tmp_path_factory):
    """KernelNames of a library of one kernel, ``scale``, whose loop runs on TVM's thread pool,
    compiled once for both tests."""
    path = tmp_path_factory.mktemp("library") / "model.so"
    with IRBuilder() as builder:
        with T.prim_func():
            T.func_name("scale")
            T.func_attr({"tirx.noalias": True})
            x_handle, y_handle = T.arg("x", T.handle()), T.arg("y", T.handle())
            x = T.match_buffer(x_handle, (1024,), "float32")
            y = T.match_buffer(y_handle, (1024,), "float32")
            with T.parallel(0, 1024) as i:
                T.buffer_store(y, x[i] * 2.0, [i])
    tvm.compile(tvm.IRModule({"scale": builder.get()}), target="llvm").export_library(str(path))
    return tool.KernelNames(path)


def test_a_parallel_body_is_named_after_the_kernel_that_launches_it(names):
    bodies = [start for start, kernel in names.bodies.items() if kernel == "scale"]
    assert len(bodies) == 1
    assert names.name(bodies[0]) == "scale*" and names.name(bodies[0] + 4) == "scale*"
    exported = dict((name, start) for start, name in names.functions)["scale"]
    assert names.name(exported) == "scale"


def test_samples_are_grouped_by_thread_and_by_what_the_thread_did(tool, names):
    body = next(start for start, kernel in names.bodies.items() if kernel == "scale")
    report = "\n".join([
        "# Overhead  Pid:Command  Shared Object  Symbol",
        f"    40.00%    100:python  model.so               [.] {body + 8:#018x}",
        "    10.00%    100:python  libpython3.11.so.1.0   [.] _PyEval_EvalFrameDefault",
        f"    30.00%    101:python  model.so               [.] {body:#018x}",
        "    12.00%    101:python  [kernel.kallsyms]      [k] finish_task_switch.isra.0",
        "     8.00%    101:python  libc.so.6              [.] __sched_yield",
    ])
    per_thread = tool._attribute(report, names)
    assert dict(per_thread["100"]) == {"scale*": 40.0, "Python": 10.0}
    assert dict(per_thread["101"]) == {"scale*": 30.0, tool.WAITING: 20.0}
