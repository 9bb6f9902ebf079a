"""Micro-benchmark of the matmul kernels on the real SmolLM2-135M shapes.

One decode step of SmolLM2-135M runs 121 matmuls: per layer (30) the fused QKV (960x576), the
output projection (576x576), the fused gate/up (3072x576) and down (576x1536), all Q4_1, plus the
LM head over the tied Q8_0 embedding (49152x576). Every layer gets its own weights, as in the
model, so the step streams ~112 MB from memory like a real one. Reported: time and GB/s per
kind of matmul (bytes of weights read / time), the whole step, and prefill GFLOP/s for m rows.

    .venv/bin/python tools/bench_kernels.py --threads 2 --repeat 20 [--m 1 --m 128] [--scale-dtype float16]
        [--activations int8] [--format q4_k] [--json out.json]

``--format`` gives the four per-layer matmuls another weight format; K-quants (q4_k, q5_k, q6_k)
need a multiple of 256 columns, so with them only down_proj (k=1536) changes, as in llama.cpp's
Q4_K_M / Q5_K_M files of SmolLM2 (where the other rows fall back to Q5_0 / Q5_1 and Q8_0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

SHAPES = [  # (name, format, n, k, per layer)
    ("qkv_proj", "q4_1", 960, 576, True),
    ("o_proj", "q4_1", 576, 576, True),
    ("gate_up_proj", "q4_1", 3072, 576, True),
    ("down_proj", "q4_1", 576, 1536, True),
    ("lm_head", "q8", 49152, 576, False),
]
LAYERS = 30


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="TVM worker threads (default 2)")
    p.add_argument("--repeat", type=int, default=20, help="timed steps per m (default 20)")
    p.add_argument("--m", type=int, action="append", help="activation rows (default: 1 and 128)")
    p.add_argument("--scale-dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--activations", default="float32", choices=["float32", "int16", "int8"],
                   help="how decode kernels round activations (see edge_os.compile.kernels)")
    p.add_argument("--format", default=None, help="weight format of the per-layer matmuls (default q4_1)")
    p.add_argument("--target", default=None, help='TVM target JSON (default: {"kind":"llvm","mcpu":<this CPU>})')
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


def _shapes(fmt: str | None) -> list[tuple[str, str, int, int, bool]]:
    """SHAPES with the per-layer matmuls in ``fmt`` where their columns allow it."""
    from edge_os.quantize.formats import FORMATS, SUPER_BLOCK

    if fmt is None:
        return SHAPES
    if fmt not in FORMATS or not FORMATS[fmt].quantized:
        raise SystemExit(f"--format: choose one of {', '.join(f for f in FORMATS if FORMATS[f].quantized)}")
    fits = lambda k: not FORMATS[fmt].super_blocks or k % SUPER_BLOCK == 0  # noqa: E731
    return [(name, fmt if per_layer and fits(k) else f, n, k, per_layer) for name, f, n, k, per_layer in SHAPES]


def _random_weight(fmt: str, n: int, k: int, scale_dtype: str, rng) -> list[np.ndarray]:
    """Arrays in kernel argument order; values do not change the speed, so no quantization."""
    from edge_os.quantize.formats import FORMATS, stored_arrays

    if fmt not in ("q4", "q4_1", "q8"):  # any other format: random arrays of the stored shapes
        arrays = []
        for _, shape, dtype in stored_arrays(FORMATS[fmt], n, k, scale_dtype):
            if dtype == "uint32":
                arrays.append(rng.integers(0, 2**32, shape, dtype=np.uint32))
            elif dtype in ("int8", "uint8"):
                arrays.append(rng.integers(0, 64, shape).astype(dtype))
            else:
                arrays.append((rng.random(shape, dtype=np.float32) * 0.01).astype(dtype))
        return arrays
    groups = k // 32
    scale = (rng.random((n, groups), dtype=np.float32) * 0.01).astype(scale_dtype)
    if fmt == "q8":
        return [rng.integers(-127, 128, (n, k), dtype=np.int8), scale]
    qweight = rng.integers(0, 2**32, (n, k // 8), dtype=np.uint32)
    arrays = [qweight, scale]
    if fmt == "q4_1":
        arrays.append((-scale.astype(np.float32) * 8).astype(scale_dtype))
    return arrays


def main() -> int:
    args = _args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import tvm

    import edge_os.compile.kernels.library  # noqa: F401
    from edge_os.compile.kernels import select_kernels
    from edge_os.quantize.formats import FORMATS
    from edge_os.quantize.tir import matmul_kernel

    target = tvm.target.Target(json.loads(args.target) if args.target else
                               {"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
    rng = np.random.default_rng(0)
    kernels, weights, impl = {}, {}, {}
    shapes = _shapes(args.format)
    for name, fmt, n, k, per_layer in shapes:
        mod = tvm.IRModule({name: matmul_kernel(FORMATS[fmt], n, k, args.scale_dtype).with_attr("global_symbol", name)})
        mod = select_kernels(mod, target, args.activations)
        impl[name] = str(mod[name].attrs.get("edge_os.kernel_impl", "reference"))
        kernels[name] = tvm.compile(mod, target=target)[name]
        copies = LAYERS if per_layer else 1
        weights[name] = [[tvm.runtime.tensor(a) for a in _random_weight(fmt, n, k, args.scale_dtype, rng)]
                         for _ in range(copies)]
    nbytes = {name: sum(a.numpy().nbytes for a in weights[name][0]) for name, *_ in shapes}
    results = {"target": str(target), "threads": args.threads, "scale_dtype": args.scale_dtype,
               "activations": args.activations,
               "impl": impl, "runs": []}
    for m in args.m or [1, 128]:
        xs = {k_: tvm.runtime.tensor(rng.standard_normal((m, k_)).astype(np.float32)) for k_ in {s[3] for s in SHAPES}}
        ys = {name: tvm.runtime.tensor(np.zeros((m, n), np.float32)) for name, _, n, _, _ in SHAPES}
        per_kernel = {name: [] for name, *_ in SHAPES}
        steps = []
        for rep in range(args.repeat + 1):
            spent = dict.fromkeys(per_kernel, 0.0)
            start = time.perf_counter()
            for layer in range(LAYERS):  # the model's order: weights stream once per step
                for name, _, _, k, _per_layer in SHAPES[:4]:
                    t = time.perf_counter()
                    kernels[name](xs[k], *weights[name][layer], ys[name])
                    spent[name] += time.perf_counter() - t
            t = time.perf_counter()
            kernels["lm_head"](xs[576], *weights["lm_head"][0], ys["lm_head"])
            spent["lm_head"] += time.perf_counter() - t
            if rep:  # the first step warms up
                steps.append(time.perf_counter() - start)
                for name in per_kernel:
                    per_kernel[name].append(spent[name])
        run = {"m": m, "step_ms": _stats([s * 1e3 for s in steps]), "kernels": {}}
        step_bytes = 0
        for name, fmt, n, k, per_layer in shapes:
            calls = LAYERS if per_layer else 1
            med = statistics.median(per_kernel[name])
            total = nbytes[name] * calls
            step_bytes += total
            run["kernels"][name] = {
                "format": fmt, "n": n, "k": k, "calls": calls, "impl": impl[name],
                "us_per_call": med / calls * 1e6, "GB/s": total / med / 1e9,
                "GFLOP/s": 2 * m * n * k * calls / med / 1e9,
            }
        run["step_GB/s"] = step_bytes / statistics.median(steps) / 1e9
        run["step_MB"] = step_bytes / 1e6
        results["runs"].append(run)
        _print_run(run)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _print_run(run: dict) -> None:
    s = run["step_ms"]
    print(f"m={run['m']}: 121 matmuls in {s['median']:.2f} ms (min {s['min']:.2f}, max {s['max']:.2f}), "
          f"{run['step_MB']:.1f} MB of weights, {run['step_GB/s']:.1f} GB/s")
    for name, r in run["kernels"].items():
        print(f"  {name:13s} {r['format']:5s} {r['n']:6d}x{r['k']:<5d} {r['impl']:10s} "
              f"{r['us_per_call']:9.1f} us/call {r['GB/s']:6.1f} GB/s {r['GFLOP/s']:7.1f} GFLOP/s")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
