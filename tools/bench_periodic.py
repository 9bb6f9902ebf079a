#!/usr/bin/env python3
"""A keyword-spotting model every 20 ms next to an LLM decoding continuously, in one scheduler.

Builds the scheduler exactly as `edge-os serve --models LLM KWS --periodic kws:20` does
(``build_scheduler`` with the same options), keeps the LLM decoding for ``--seconds`` (one request
after another, EOS ignored), and reports the periodic model's deadline misses, its worst latency
from release to finish, LLM tok/s, the scheduler's peak accounted memory against the budget and
the process's peak RSS. Then the same run without the periodic model, for the LLM's tok/s alone.

    .venv/bin/python tools/bench_periodic.py --seconds 60 --threads 2

The LLM is the bundled SmolLM2-135M (packed on first use) unless ``--llm PACKAGE`` is given; the
keyword-spotting model is pymicro-wakeword's okay_nabu (a dev dependency), fed seeded random int8
feature frames. The loop runs on a shared machine: other processes' load shows up as misses.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def keep_decoding(scheduler, model: str, stop: threading.Event, tokens: list[tuple[float, int]]) -> None:
    """Submit one long request after another until ``stop``; record (when, tokens) per delta."""
    from edge_os.runtime.request import GenerationRequest, SamplingParams, TextDelta

    while not stop.is_set():
        request = GenerationRequest(prompt="Tell a long story about a lighthouse keeper.", model=model,
                                    max_tokens=1024, ignore_eos=True, sampling=SamplingParams(temperature=0.7, seed=1))
        handle = scheduler.submit(request)
        for event in handle.events(timeout=60):
            if isinstance(event, TextDelta) and event.token_ids:
                tokens.append((time.monotonic(), len(event.token_ids)))
            if stop.is_set():
                handle.cancel()
                stop_drain = list(handle.events(timeout=60))
                del stop_drain
                return


def run(llm: Path | None, kws: Path | None, args) -> dict:
    """One run: the LLM decoding (``llm``), the periodic model (``kws``), or both."""
    from edge_os.scheduler.service import ServeOptions, build_scheduler

    models = tuple(p for p in (llm, kws) if p is not None)
    periodic = () if kws is None else (f"kws:{args.period_ms}:{args.frames}",)
    scheduler = build_scheduler(ServeOptions(models=models, memory_budget=args.memory_budget, threads=args.threads,
                                             context=args.context, periodic=periodic, keep_alive="inf"))
    scheduler.start()
    stop, tokens = threading.Event(), []
    if llm is not None:
        llm_name = next(m["name"] for m in scheduler.status()["models"] if m["kind"] == "llm")
        worker = threading.Thread(target=keep_decoding, args=(scheduler, llm_name, stop, tokens), daemon=True)
        worker.start()
        while not tokens:  # the LLM loaded and decodes: the window starts now
            time.sleep(0.05)
    else:
        while not scheduler.status()["periodic"][0]["runs"]:
            time.sleep(0.05)
    began = time.monotonic()
    start_status = scheduler.status()
    time.sleep(args.seconds)
    ended = time.monotonic()
    status = scheduler.status()
    stop.set()
    if llm is not None:
        worker.join(timeout=120)
    scheduler.close()
    decoded = sum(n for when, n in tokens if began <= when < ended)
    out = {
        "seconds": round(ended - began, 2),
        "llm_tok_s": round(decoded / (ended - began), 2),
        "budget_bytes": status["memory"]["budget_bytes"],
        "peak_accounted_bytes": status["memory"]["peak_accounted_bytes"],
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "llm_yields": status["llm_yields"],
    }
    if status["periodic"]:
        (p,) = status["periodic"]
        (p0,) = start_status["periodic"]
        releases = p["runs"] + p["skipped"] - p0["runs"] - p0["skipped"]
        misses = p["misses"] - p0["misses"]
        out.update(period_ms=p["period_ms"], releases=releases, misses=misses,
                   skipped=p["skipped"] - p0["skipped"], miss_pct=round(100 * misses / max(releases, 1), 3),
                   worst_latency_ms=p["worst_latency_ms"], recent_p99_latency_ms=p["recent_p99_latency_ms"],
                   recent_worst_latency_ms=p["recent_worst_latency_ms"], run_ms=p["run_ms"], errors=p["errors"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--period-ms", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None, help="LLM threads (default: EDGE_OS_THREADS)")
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--memory-budget", default="1G")
    parser.add_argument("--llm", type=Path, default=None, help="LLM package (default: the bundled SmolLM2)")
    parser.add_argument("--skip-baseline", action="store_true", help="only the run with the periodic model")
    parser.add_argument("--control", action="store_true",
                        help="also run the periodic model alone (no LLM): what this machine's load costs it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np

    from edge_os.package.tflite import pack_tflite, read_manifest
    from tests.tflite_models import keyword_spotting_model

    llm = args.llm
    if llm is None:
        from edge_os.default_model import default_package

        llm = default_package(separate_process=True)
    with tempfile.TemporaryDirectory(prefix="bench-periodic-") as tmp:
        kws = pack_tflite(keyword_spotting_model(), Path(tmp) / "kws", name="kws")
        spec = read_manifest(kws).inputs[0]
        frames = np.random.default_rng(0).integers(-128, 127, size=(256, *spec.shape), endpoint=True)
        args.frames = Path(tmp) / "frames.npy"
        np.save(args.frames, frames.astype(spec.dtype))
        results = {"with_periodic": run(llm, kws, args)}
        if not args.skip_baseline:
            results["llm_alone"] = run(llm, None, args)
        if args.control:
            results["periodic_alone"] = run(None, kws, args)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    w = results["with_periodic"]
    print(f"periodic kws every {w['period_ms']:g} ms for {w['seconds']} s: {w['releases']} releases, "
          f"{w['misses']} missed deadlines ({w['miss_pct']}%; {w['skipped']} of them skipped), one run "
          f"{w['run_ms']} ms, {w['errors']} errors; LLM yielded {w['llm_yields']} times")
    print(f"release-to-finish latency: p99 {w['recent_p99_latency_ms']} ms and worst {w['recent_worst_latency_ms']} ms "
          f"over the last 1000 runs; worst {w['worst_latency_ms']} ms since start (LLM load included)")
    print(f"LLM tok/s with the periodic model: {w['llm_tok_s']}")
    if "llm_alone" in results:
        print(f"LLM tok/s alone:                   {results['llm_alone']['llm_tok_s']}")
    if "periodic_alone" in results:
        c = results["periodic_alone"]
        print(f"control, periodic model alone: {c['releases']} releases, {c['misses']} missed ({c['miss_pct']}%; "
              f"{c['skipped']} skipped), p99 {c['recent_p99_latency_ms']} ms, worst {c['recent_worst_latency_ms']} ms")
    mib = 1 << 20
    print(f"memory: peak accounted {w['peak_accounted_bytes'] / mib:.1f} MiB of a {w['budget_bytes'] / mib:.0f} MiB "
          f"budget; peak RSS of this process {w['peak_rss_bytes'] / mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
