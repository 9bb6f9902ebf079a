#!/usr/bin/env python3
"""edge-os against llama.cpp on the same GGUF, prompt and CPU: interleaved runs, medians, ratios.

Each repetition runs tools/bench.py (edge-os, on the package packed from the GGUF) and
tools/bench_llamacpp.py (llama-cpp-python on the GGUF itself) as separate processes, one after
the other, alternating which goes first, so that both see the same machine state. Scenarios:
decode over 128 and 1024 generated tokens, and 128 tokens at 512 tokens of context; every run also
measures prefill of 128/512-token prompts, time to first token, load time and peak RSS.

    bash tools/build_llamacpp.sh             # once
    .venv/bin/python tools/compare.py --threads 1 --threads 2 --reps 3 [--json compare.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
SCENARIOS = {"decode128": (128, 0), "decode1024": (1024, 0), "decode128@512": (128, 512)}
# metric -> True when higher is better
PER_RUN = {"prefill128_tok_s": True, "prefill512_tok_s": True, "ttft128_s": False, "load_s": False,
           "peak_rss_mib": False}
ENGINES = {"edge-os": "bench.py", "llama.cpp": "bench_llamacpp.py"}


def run_one(engine: str, threads: int, tokens: int, context: int, extra: list[str]) -> dict:
    cmd = [sys.executable, str(TOOLS / ENGINES[engine]), "--threads", str(threads), "--reps", "1",
           "--decode-tokens", str(tokens), "--decode-context", str(context), "--json", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def _value(report: dict, key: str) -> float:
    v = report[key]
    return v["median"] if isinstance(v, dict) else float(v)


def compare(threads: int, reps: int, extras: dict[str, list[str]]) -> dict:
    samples = {engine: {} for engine in ENGINES}
    for rep in range(reps):
        for name, (tokens, context) in SCENARIOS.items():
            order = list(ENGINES) if rep % 2 == 0 else list(reversed(ENGINES))
            for engine in order:
                report = run_one(engine, threads, tokens, context, extras[engine])
                samples[engine].setdefault(name + "_tok_s", []).append(_value(report, "decode_tok_s"))
                for key in PER_RUN:
                    samples[engine].setdefault(key, []).append(_value(report, key))
                print(f"  threads {threads} rep {rep + 1}/{reps} {name:14s} {engine:9s} "
                      f"decode {_value(report, 'decode_tok_s'):7.1f} tok/s", file=sys.stderr, flush=True)
    table = {}
    for key in samples["edge-os"]:
        higher_better = PER_RUN.get(key, True)
        ours, theirs = samples["edge-os"][key], samples["llama.cpp"][key]
        table[key] = {"edge-os": _stats(ours), "llama.cpp": _stats(theirs), "higher_is_better": higher_better,
                      "ratio": statistics.median(ours) / statistics.median(theirs)}
    return table


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _print(threads: int, table: dict) -> None:
    print(f"\nthreads {threads}: median [min-max]; ratio = edge-os / llama.cpp")
    print(f"  {'metric':22s} {'edge-os':>26s} {'llama.cpp':>26s} {'ratio':>7s}")
    for key, row in table.items():
        cells = [f"{row[e]['median']:9.2f} [{row[e]['min']:.2f}-{row[e]['max']:.2f}]" for e in ENGINES]
        better = "higher better" if row["higher_is_better"] else "lower better"
        print(f"  {key:22s} {cells[0]:>26s} {cells[1]:>26s} {row['ratio']:7.2f}  ({better})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, action="append", help="thread counts (default: 1 and 2)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions per scenario")
    parser.add_argument("-m", "--model", help="edge-os package (default: the bundled model packed for this machine)")
    parser.add_argument("--gguf", help="GGUF for llama.cpp (default: the bundled SmolLM2-135M Q4_1)")
    parser.add_argument("--json", type=Path, help="write all results here")
    args = parser.parse_args()
    extras = {"edge-os": ["-m", args.model] if args.model else [], "llama.cpp": ["-m", args.gguf] if args.gguf else []}
    results = {}
    for threads in args.threads or [1, 2]:
        results[threads] = compare(threads, args.reps, extras)
        _print(threads, results[threads])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
