#!/usr/bin/env python3
"""Batch decode through the scheduler: N requests at once vs the same N one after another.

Loads one model package under the real scheduler loop and measures aggregate decode throughput
and per-request latency both ways. Without --package it uses the bundled default model (packed
once per machine, see `edge-os demo`).

    .venv/bin/python tools/bench_scheduler.py --n 4 --max-tokens 64
    .venv/bin/python tools/bench_scheduler.py --package path/to/pkg --n 8 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams
from edge_os.scheduler.catalog import Catalog, package_entry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the simulated device lives with the tests

from tests.simulated_sysfs import SimulatedDevice  # noqa: E402


def run_one(scheduler: Scheduler, i: int, max_tokens: int, out: list) -> None:
    request = GenerationRequest(prompt=f"Write a short story number {i} about a robot.", max_tokens=max_tokens,
                                ignore_eos=True, sampling=SamplingParams(temperature=0.7, seed=i))
    started = time.perf_counter()
    events = list(scheduler.submit(request).events(timeout=600))
    end = events[-1]
    if not isinstance(end, Finished):
        raise SystemExit(f"bench_scheduler: request {i} was refused: {end}")
    out.append((time.perf_counter() - started, end.usage.completion_tokens))


def measure(scheduler: Scheduler, n: int, max_tokens: int, concurrent: bool) -> dict:
    results: list = []
    started = time.perf_counter()
    if concurrent:
        threads = [threading.Thread(target=run_one, args=(scheduler, i, max_tokens, results)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(n):
            run_one(scheduler, i, max_tokens, results)
    wall = time.perf_counter() - started
    tokens = sum(t for _, t in results)
    return {"wall_s": round(wall, 3), "tokens": tokens, "tok_s": round(tokens / wall, 2),
            "mean_latency_s": round(sum(s for s, _ in results) / n, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", type=Path, help="model package (default: the bundled default model)")
    parser.add_argument("--n", type=int, default=4, help="requests (and the batch size when concurrent)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default: EDGE_OS_THREADS)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.package is None:
        from edge_os.default_model import default_package

        args.package = default_package(progress=False)
    from edge_os.config import settings

    entry = package_entry(args.package, context_tokens=max(512, args.n * (args.max_tokens + 64)),
                          max_batch=max(8, args.n))
    with tempfile.TemporaryDirectory() as cool:  # a cool simulated device: measure the engine, not the governor
        device = SimulatedDevice(cool)
        config = SchedulerConfig(budget_bytes=entry.info.resident_bytes * 2, threads=args.threads or settings().threads)
        scheduler = Scheduler(Catalog([entry]), config, MemoryProbe(), ThermalProbe(device.thermal_dir),
                              PowerProbe(device.power_dir))
        with scheduler.start():
            measure(scheduler, 1, 8, concurrent=False)  # load and warm up
            sequential = measure(scheduler, args.n, args.max_tokens, concurrent=False)
            concurrent = measure(scheduler, args.n, args.max_tokens, concurrent=True)
    report = {"model": entry.name, "n": args.n, "max_tokens": args.max_tokens, "sequential": sequential,
              "concurrent": concurrent, "speedup": round(concurrent["tok_s"] / sequential["tok_s"], 2)}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{entry.name}: {args.n} requests x {args.max_tokens} tokens")
        for name in ("sequential", "concurrent"):
            r = report[name]
            print(f"  {name:<10}  {r['tok_s']:8.1f} tok/s  wall {r['wall_s']:6.2f} s  "
                  f"mean latency {r['mean_latency_s']:6.2f} s")
        print(f"  batched decode speedup: {report['speedup']}x")


if __name__ == "__main__":
    main()
