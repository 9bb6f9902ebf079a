"""One matmul shape in several formats, timed as the minimum of many calls: robust on a loaded machine.

``tools/bench_kernels.py`` reports medians of whole decode steps, which descheduling ruins when other
jobs share the cores. Here each FORMAT:ACTIVATIONS kernel is timed on one weight in cache (minimum of
200 calls: the compute cost) and swept over 30 copies (minimum of 40 sweeps: streaming from memory).

    .venv/bin/python tools/bench_kernel_min.py q6_k:float32 q6_k:int16 q4_k:int16 [--n 576 --k 1536]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kernels", nargs="+", metavar="FORMAT:ACTIVATIONS", help="e.g. q4_k:int16, q6_k:float32")
    p.add_argument("--n", type=int, default=576, help="weight rows (default 576: SmolLM2's down_proj)")
    p.add_argument("--k", type=int, default=1536, help="weight columns (default 1536)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale-dtype", default="float16", choices=["float32", "float16"])
    args = p.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import tvm

    import edge_os.compile.kernels.library  # noqa: F401
    from edge_os.compile.kernels import select_kernels
    from edge_os.quantize.formats import FORMATS
    from edge_os.quantize.tir import matmul_kernel

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_kernels import _random_weight

    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
    rng = np.random.default_rng(0)
    x = tvm.runtime.tensor(rng.standard_normal((1, args.k)).astype(np.float32))
    y = tvm.runtime.tensor(np.zeros((1, args.n), np.float32))
    for spec in args.kernels:
        fmt, activations = spec.split(":")
        mod = tvm.IRModule({"f": matmul_kernel(FORMATS[fmt], args.n, args.k, args.scale_dtype).with_attr(
            "global_symbol", "f")})
        kernel = tvm.compile(select_kernels(mod, target, activations), target=target)["f"]
        copies = [[tvm.runtime.tensor(a) for a in _random_weight(fmt, args.n, args.k, args.scale_dtype, rng)]
                  for _ in range(30)]
        nbytes = sum(a.numpy().nbytes for a in copies[0])
        hot, sweep = [], []
        for _ in range(200):
            start = time.perf_counter()
            kernel(x, *copies[0], y)
            hot.append(time.perf_counter() - start)
        for _ in range(40):
            start = time.perf_counter()
            for weight in copies:
                kernel(x, *weight, y)
            sweep.append((time.perf_counter() - start) / len(copies))
        print(f"{fmt:5s} {activations:8s} {nbytes / 1e3:7.1f} KB  in cache {min(hot) * 1e6:6.1f} us  "
              f"30 copies {min(sweep) * 1e6:6.1f} us ({nbytes / min(sweep) / 1e9:5.1f} GB/s)  "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
