#!/usr/bin/env python3
"""Memory read bandwidth of this machine: the ceiling for decode, which streams every weight once.

Two stream-like read tests over a buffer far larger than the caches (default 512 MiB):
- ``numpy``: ``np.sum`` over float32 chunks on 1..N Python threads (numpy releases the GIL);
- ``tvm``: a TVM kernel that sums float32 with 8-lane vectors and 4 independent accumulators per
  thread, on 1 and 2 TVM threads (what our kernels can read at best).
Median and max over repetitions, in GB/s (1e9 bytes/s).

    .venv/bin/python tools/bench_membw.py [--mib 512] [--reps 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def numpy_read(array, threads: int) -> float:
    chunks = [c for c in __import__("numpy").array_split(array, threads)]
    workers = [threading.Thread(target=c.sum) for c in chunks]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return array.nbytes / (time.perf_counter() - start) / 1e9


def tvm_sum_kernel(n: int):
    """A parallel float32 sum: each of 64 tasks reads a contiguous slice with 4 accumulators."""
    import tvm
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    from edge_os.compile.kernels.vector import bcast, const, load, tree_sum, vload, vstore_index

    tasks, step = 64, 32
    per_task = n // tasks
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_attr({"global_symbol": "main", "tirx.noalias": True})
            a = T.arg("a", T.buffer((n,), "float32"))
            out = T.arg("out", T.buffer((tasks,), "float32"))
            with T.parallel(0, tasks) as task:
                acc = T.decl_buffer((step,), "float32")
                for j in range(4):
                    T.buffer_store(acc, bcast(const(0.0), 8), vstore_index(j * 8, lanes=8))
                with T.serial(0, per_task // step) as i:
                    for j in range(4):
                        v = vload(acc, j * 8, lanes=8) + vload(a, task * per_task + i * step + j * 8, lanes=8)
                        T.buffer_store(acc, v, vstore_index(j * 8, lanes=8))
                T.buffer_store(out, tree_sum([load(acc, k) for k in range(step)]), [task])
    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
    return tvm.compile(tvm.IRModule({"main": ib.get()}), target=target)["main"]


def tvm_read(mib: int, threads: int, reps: int) -> list[float]:
    """Run in a child process: TVM sizes its thread pool once per process."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_membw as b; "
            f"print(b._tvm_child({mib}, {reps}))")
    env = dict(os.environ, TVM_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def tvm_reader(mib: int):
    """A function that reads a ``mib`` MiB buffer once with ``tvm_sum_kernel`` on this process's
    TVM threads and returns the speed in GB/s (the buffer and kernel are made once, here)."""
    import numpy as np
    import tvm

    n = mib * 2**20 // 4
    kernel = tvm_sum_kernel(n)
    a = tvm.runtime.tensor(np.ones(n, np.float32))
    out = tvm.runtime.tensor(np.zeros(64, np.float32))

    def read() -> float:
        start = time.perf_counter()
        kernel(a, out)
        return n * 4 / (time.perf_counter() - start) / 1e9

    return read


def _tvm_child(mib: int, reps: int) -> str:
    read = tvm_reader(mib)
    read()
    return json.dumps([read() for _ in range(reps)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import numpy as np

    array = np.ones(args.mib * 2**20 // 4, np.float32)
    report = {"MiB": args.mib}
    for threads in (1, 2):
        report[f"numpy_{threads}t"] = [numpy_read(array, threads) for _ in range(args.reps)]
        report[f"tvm_{threads}t"] = tvm_read(args.mib, threads, args.reps)
    summary = {k: {"median": statistics.median(v), "max": max(v)} for k, v in report.items() if k != "MiB"}
    if args.json:
        print(json.dumps({"MiB": args.mib, **summary}, indent=1))
        return 0
    print(f"memory read bandwidth over {args.mib} MiB, GB/s: median (max)")
    for key, s in summary.items():
        print(f"  {key:10s} {s['median']:6.1f}  ({s['max']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
