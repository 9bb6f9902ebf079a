#!/usr/bin/env python3
"""Where the time of one decode (or prefill) step goes: every VM call of a package, timed.

Runs a package's ``decode`` with a VM instrument that timestamps each call instruction (kernels,
KV-cache builtins, reshapes, allocations), and reports per function symbol: calls per step, total
microseconds per step and share. The instrument costs a few microseconds per call itself; the
un-instrumented step time is printed first for reference. ``--batch N`` decodes N sequences in
each step (batched decode, as the scheduler runs N streams).

    .venv/bin/python tools/profile_step.py PACKAGE [--context 512] [--threads 2] [--prefill 128] [--batch 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--context", type=int, default=16, help="tokens in the KV cache before the step")
    parser.add_argument("--prefill", type=int, default=0, help="profile a prefill of this many tokens instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1, help="sequences decoded in each step")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error("--batch must be 1 or more sequences")
    if args.batch > 1 and args.prefill:
        parser.error("--batch profiles decode steps; leave out --prefill")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np

    from edge_os.errors import EdgeOSError
    from edge_os.package.reader import open_package, read_params
    from edge_os.runtime.runner import CacheShape, ModelRunner

    try:
        manifest = open_package(args.package)
        runner = ModelRunner(args.package / manifest.library, read_params(args.package, manifest),
                             CacheShape(max_batch_size=args.batch, max_total_tokens=4096 * args.batch), args.threads)
    except EdgeOSError as exc:  # not a package, a damaged one, one for another CPU: one line
        parser.error(str(exc))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, args.context).tolist()
    sequences = list(range(args.batch))
    for seq in sequences:
        runner.add_sequence(seq)
        runner.prefill(seq, ids)

    def step():
        if args.prefill:
            runner.truncate(0, args.prefill) if runner.sequence_length(0) > args.context else None
            runner.prefill(0, ids[:1] * args.prefill)
        else:
            runner.decode(sequences, [int(ids[-1])] * args.batch)
            for seq in sequences:
                runner.truncate(seq, 1)

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    step_ms = (time.perf_counter() - started) / args.steps * 1e3

    spent, calls, stamp = defaultdict(float), defaultdict(int), {}

    def instrument(func, symbol, before, ret, *call_args):
        now = time.perf_counter()
        if before:
            stamp[symbol] = now
        else:
            spent[symbol] += now - stamp.pop(symbol)
            calls[symbol] += 1
        return 0

    runner.vm["set_instrument"](instrument)
    for _ in range(args.steps):
        step()
    runner.vm["set_instrument"](None)
    kind = f"prefill of {args.prefill}" if args.prefill else f"decode of {args.batch}" if args.batch > 1 else "decode"
    total = sum(spent.values()) / args.steps * 1e6
    print(f"{kind} step at {args.context} tokens of context, {args.threads} threads: "
          f"{step_ms:.2f} ms un-instrumented; {total / 1e3:.2f} ms inside VM calls "
          f"({sum(calls.values()) // args.steps} calls)")
    print(f"  {'function':44s} {'calls':>6s} {'us/step':>9s} {'share':>6s}")
    for symbol, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        us = seconds / args.steps * 1e6
        print(f"  {symbol[:44]:44s} {calls[symbol] // args.steps:6d} {us:9.1f} {us / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
