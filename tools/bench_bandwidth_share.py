#!/usr/bin/env python3
"""Single-stream decode as a share of the machine's read bandwidth, both measured in one process.

Decode streams every weight once per token, so the read bandwidth is its ceiling. On a shared host
both the bandwidth and the step time swing from minute to minute; measured apart (``bench_membw.py``
then ``profile_step.py``) their ratio mixes a quiet minute with a busy one. Here they alternate:
each round runs ``bench_membw.py``'s TVM read test (``--reps`` passes over a buffer far larger
than the caches, on the same TVM thread pool) and then ``--steps`` decode steps of the package at
``--context`` tokens, and the round's share is (weight bytes per token / step time) / bandwidth.
Reported: the median [min-max] over rounds of the share, the step time and the bandwidth.

Weight bytes per token: every parameter of the package, except an untied embedding table (one of
its rows is read per token; a tied one is the LM head and is read whole).

    .venv/bin/python tools/bench_bandwidth_share.py PACKAGE [--rounds 12] [--steps 100] [--context 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def weight_bytes_per_token(manifest) -> int:
    """Bytes of the parameters one decode step reads (an untied embedding table: one row, left out)."""
    untied = any(p.name.startswith("lm_head.") for p in manifest.params)
    return sum(p.nbytes for p in manifest.params if not (untied and p.name.startswith("model.embed_tokens.")))


def spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=100, help="decode steps per round")
    parser.add_argument("--reps", type=int, default=3, help="passes of the read test per round (the fastest counts)")
    parser.add_argument("--context", type=int, default=100, help="tokens in the KV cache before each step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mib", type=int, default=512, help="size of the read test's buffer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if min(args.rounds, args.steps, args.reps, args.context, args.threads) < 1:
        parser.error("--rounds, --steps, --reps, --context and --threads must be 1 or more")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import tvm
    from bench_membw import tvm_sum_kernel

    from edge_os.package.reader import open_package, read_params
    from edge_os.runtime.runner import CacheShape, ModelRunner

    manifest = open_package(args.package)
    per_token = weight_bytes_per_token(manifest)
    runner = ModelRunner(args.package / manifest.library, read_params(args.package, manifest),
                         CacheShape(max_batch_size=1, max_total_tokens=args.context + 16), args.threads)
    runner.add_sequence(0)
    runner.prefill(0, np.random.default_rng(0).integers(0, 1000, args.context).tolist())
    n = args.mib * 2**20 // 4
    read = tvm_sum_kernel(n)
    buffer = tvm.runtime.tensor(np.ones(n, np.float32))
    sums = tvm.runtime.tensor(np.zeros(64, np.float32))

    def bandwidth() -> float:
        best = 0.0
        for _ in range(args.reps):
            start = time.perf_counter()
            read(buffer, sums)
            best = max(best, n * 4 / (time.perf_counter() - start) / 1e9)
        return best

    def step_ms() -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            runner.decode([0], [7])
            runner.truncate(0, 1)
        return (time.perf_counter() - start) / args.steps * 1e3

    bandwidth(), step_ms()  # warm both: page faults, the thread pool, the caches of the code
    rounds = []
    for _ in range(args.rounds):
        gbs, ms = bandwidth(), step_ms()
        rounds.append({"read_GBps": gbs, "step_ms": ms, "share": per_token / (ms * 1e-3) / 1e9 / gbs})
    report = {"weight_MB_per_token": per_token / 1e6, "threads": args.threads, "context": args.context,
              "rounds": rounds}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.package.name}: {per_token / 1e6:.1f} MB of weights per token, {args.threads} threads, "
          f"{args.context} tokens of context; {args.rounds} rounds, median [min-max]")
    print(f"  read bandwidth   {spread([r['read_GBps'] for r in rounds], 1)} GB/s (fastest of {args.reps} a round)")
    print(f"  decode step      {spread([r['step_ms'] for r in rounds], 3)} ms ({args.steps} a round)")
    print(f"  share            {spread([100 * r['share'] for r in rounds], 1)} % of the bandwidth, per round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
