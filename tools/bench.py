#!/usr/bin/env python3
"""Benchmark the edge-os engine on a package (default: the bundled SmolLM2-135M).

Measures package load time, prefill tok/s for 128- and 512-token prompts, time to first token for
a 128-token prompt, decode tok/s over N generated tokens, and the process's peak RSS. Repetitions
are interleaved and reported as median [min-max]. Prints a table, or JSON with --json.

    .venv/bin/python tools/bench.py --threads 2 --reps 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEXT = (Path(__file__).resolve().parent.parent / "tests" / "data" / "declaration_of_independence.txt").read_text()


def prompt_ids(engine, n: int) -> list[int]:
    ids = engine.tokenizer.encode(TEXT, add_special_tokens=False).ids
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def time_prefill(engine, ids: list[int], seq_id: int) -> float:
    engine.runner.add_sequence(seq_id)
    started = time.perf_counter()
    engine.runner.prefill(seq_id, ids)
    elapsed = time.perf_counter() - started
    engine.runner.remove_sequence(seq_id)
    return len(ids) / elapsed


def time_ttft(engine, ids: list[int]) -> float:
    from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams

    text = engine.tokenizer.decode(ids)
    request = GenerationRequest(prompt=text, raw=True, max_tokens=1, sampling=SamplingParams(temperature=0))
    return [e for e in engine.generate(request) if isinstance(e, Finished)][0].timings.ttft_s


def time_decode(engine, context: list[int], tokens: int, seq_id: int) -> float:
    """Greedy decode ``tokens`` tokens after prefilling ``context``: tok/s of the decode steps."""
    import numpy as np

    runner = engine.runner
    runner.add_sequence(seq_id)
    logits = runner.prefill(seq_id, context)
    token = int(np.argmax(logits))
    started = time.perf_counter()
    for _ in range(tokens):
        token = int(np.argmax(runner.decode([seq_id], [token])[0]))
    elapsed = time.perf_counter() - started
    runner.remove_sequence(seq_id)
    return tokens / elapsed


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def print_report(title: str, report: dict, keys) -> None:
    """The human-readable table (tools/bench_llamacpp.py prints the same one)."""
    print(title)
    print(f"  load            {report['load_s']:.2f} s")
    for key in keys:
        s = report[key]
        print(f"  {key:<16}{s['median']:10.2f}  [{s['min']:.2f}-{s['max']:.2f}]")
    print(f"  peak RSS        {report['peak_rss_mib']:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", type=Path, help="package (default: the bundled model, packed if needed)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--decode-context", type=int, default=0, help="tokens already in the context when decoding")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from edge_os.default_model import default_package
    from edge_os.runtime.tvm_runtime import use_runtime_only_tvm

    package = args.model or default_package(progress=False, separate_process=True)
    use_runtime_only_tvm()
    from edge_os.runtime.engine import Engine

    started = time.perf_counter()
    context = max(2048, args.decode_context + args.decode_tokens + 64)
    engine = Engine.load(package, threads=args.threads, context_tokens=context)
    load_s = time.perf_counter() - started
    p128, p512 = prompt_ids(engine, 128), prompt_ids(engine, 512)
    context = prompt_ids(engine, max(args.decode_context, 1))
    time_decode(engine, p128[:8], 8, 1)  # warm-up
    results = {"prefill128_tok_s": [], "prefill512_tok_s": [], "ttft128_s": [], "decode_tok_s": []}
    for rep in range(args.reps):
        results["prefill128_tok_s"].append(time_prefill(engine, p128, 10 + rep))
        results["prefill512_tok_s"].append(time_prefill(engine, p512, 20 + rep))
        results["ttft128_s"].append(time_ttft(engine, p128))
        results["decode_tok_s"].append(time_decode(engine, context, args.decode_tokens, 30 + rep))
    report = {
        "package": str(package), "threads": args.threads or "default", "reps": args.reps,
        "decode_tokens": args.decode_tokens, "decode_context": args.decode_context,
        "load_s": load_s, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{k: summary(v) for k, v in results.items()},
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print_report(f"edge-os bench: {package} (threads {report['threads']}, {args.reps} reps)", report, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
