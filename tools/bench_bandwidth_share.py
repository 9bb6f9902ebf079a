#!/usr/bin/env python3
"""Single-stream decode as a share of the machine's read bandwidth, both measured in one process.

Decode streams every weight once per token, so the read bandwidth is its ceiling. On a shared host
both the bandwidth and the step time swing from minute to minute; measured apart (``bench_membw.py``
then ``profile_step.py``) their ratio mixes a quiet minute with a busy one. Here they alternate:
each round runs ``bench_membw.py``'s TVM read test (``--reps`` passes over a buffer far larger
than the caches, on the same TVM thread pool) and then ``--steps`` decode steps of the package at
``--context`` tokens, and the round's share is (weight bytes per token / step time) / bandwidth. Several packages (a
before and an after) each run their steps in every round, against the same bandwidth reading.
Reported: the median [min-max] over rounds of the bandwidth and, per package, of the step time and
the share.

Weight bytes per token: every parameter of the package, except an untied embedding table (one of
its rows is read per token; a tied one is the LM head and is read whole).

    .venv/bin/python tools/bench_bandwidth_share.py PACKAGE [PACKAGE ...] [--rounds 12] [--steps 100] [--context 100]
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
    """The package's weight bytes, less an untied embedding table (one row of it is read a step)."""
    untied = any(p.name.startswith("lm_head.") for p in manifest.params)
    table = sum(p.nbytes for p in manifest.params if p.name.startswith("model.embed_tokens.")) if untied else 0
    return manifest.memory.weight_bytes - table


def spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


class _Stepper:
    """One package loaded with a sequence of ``context`` tokens, decoding and forgetting one token."""

    def __init__(self, package: Path, context: int, threads: int):
        import numpy as np

        from edge_os.package.reader import open_package, read_params
        from edge_os.runtime.runner import CacheShape, ModelRunner

        manifest = open_package(package)
        self.name = str(package)
        self.bytes_per_token = weight_bytes_per_token(manifest)
        self.runner = ModelRunner(package / manifest.library, read_params(package, manifest),
                                  CacheShape(max_batch_size=1, max_total_tokens=context + 16), threads)
        self.runner.add_sequence(0)
        self.runner.prefill(0, np.random.default_rng(0).integers(0, 1000, context).tolist())

    def step_ms(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.runner.decode([0], [7])
            self.runner.truncate(0, 1)
        return (time.perf_counter() - start) / steps * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", type=Path, nargs="+", metavar="PACKAGE")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=100, help="decode steps per round and package")
    parser.add_argument("--reps", type=int, default=3, help="passes of the read test per round (the fastest counts)")
    parser.add_argument("--context", type=int, default=100, help="tokens in the KV cache before each step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mib", type=int, default=512, help="size of the read test's buffer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if min(args.rounds, args.steps, args.reps, args.context, args.threads) < 1:
        parser.error("--rounds, --steps, --reps, --context and --threads must be 1 or more")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    from bench_membw import tvm_reader

    from edge_os.errors import EdgeOSError

    try:
        steppers = [_Stepper(package, args.context, args.threads) for package in args.packages]
    except EdgeOSError as exc:  # not a package, a damaged one, one for another CPU: one line
        parser.error(str(exc))
    read = tvm_reader(args.mib)

    def bandwidth() -> float:
        return max(read() for _ in range(args.reps))

    bandwidth()  # warm everything once: page faults, the thread pool, the caches of the code
    for stepper in steppers:
        stepper.step_ms(args.steps)
    rounds = []
    for _ in range(args.rounds):
        gbs = bandwidth()
        steps = {s.name: s.step_ms(args.steps) for s in steppers}
        rounds.append({"read_GBps": gbs, "step_ms": steps,
                       "share": {s.name: s.bytes_per_token / (steps[s.name] * 1e-3) / 1e9 / gbs for s in steppers}})
    if args.json:
        print(json.dumps({"threads": args.threads, "context": args.context,
                          "weight_MB_per_token": {s.name: s.bytes_per_token / 1e6 for s in steppers},
                          "rounds": rounds}, indent=1))
        return 0
    print(f"{args.threads} threads, {args.context} tokens of context, {args.rounds} rounds of {args.steps} steps a "
          f"package; median [min-max]")
    print(f"  read bandwidth {spread([r['read_GBps'] for r in rounds], 1)} GB/s (fastest of {args.reps} a round)")
    for s in steppers:
        print(f"  {s.name} ({s.bytes_per_token / 1e6:.1f} MB of weights per token): decode step "
              f"{spread([r['step_ms'][s.name] for r in rounds], 3)} ms, "
              f"{spread([100 * r['share'][s.name] for r in rounds], 1)} % of the bandwidth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
