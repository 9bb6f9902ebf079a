#!/usr/bin/env python3
"""What the HTTP front door costs over the engine, and what grammar masking costs per token.

1. Direct: the engine in this process, greedy, streaming events: time to first token and decode
   tok/s (tokens after the first over the time after the first).
2. HTTP: `edge-os serve --http` in a child process with the same threads, the same request
   streamed with http.client: time to the first content chunk and decode tok/s between the first and
   the last chunk. The difference is the scheduler + HTTP + SSE path.
3. Grammar: decode tok/s of a json_object-constrained request against the same request
   unconstrained, and the mask's own cost (fill + unpack + accept) per token, timed alone.

    .venv/bin/python tools/bench_http.py --threads 2 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/sse_stream.py

PROMPT = "Write a long story about a gardener who grows basil on a windowsill."


def direct(engine, max_tokens: int, constraint=None) -> tuple[float, float]:
    from edge_os.runtime.request import GenerationRequest, SamplingParams, TextDelta

    request = GenerationRequest(prompt=PROMPT, max_tokens=max_tokens, ignore_eos=constraint is None,
                                sampling=SamplingParams(temperature=0), constraint=constraint)
    started, stamps = time.perf_counter(), []
    for event in engine.generate(request):
        if isinstance(event, TextDelta) and event.token_ids:
            stamps.append(time.perf_counter())
    return stamps[0] - started, (len(stamps) - 1) / (stamps[-1] - stamps[0])


def over_http(url: str, model: str, max_tokens: int) -> tuple[float, float, int]:
    from sse_stream import stream_chat

    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "max_tokens": max_tokens, "ignore_eos": True, "stream_options": {"include_usage": True}}
    started, stamps = time.perf_counter(), []
    tokens = stream_chat(url, body, stamps, timeout=600)
    # Chunks carry text deltas; a token that completes no character adds none, so rate by tokens.
    return stamps[0] - started, (tokens - 1) / (stamps[-1] - stamps[0]), tokens


def start_server(package: Path, threads: int) -> tuple[subprocess.Popen, str]:
    sock = Path(tempfile.mkdtemp(prefix="eos-bench-")) / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", str(package), "--http", "127.0.0.1:0",
         "--threads", str(threads), "--socket", str(sock), "--preload", json.loads(
             (package / "manifest.json").read_text())["name"]],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "EDGE_OS_LOG_LEVEL": "INFO"})
    url: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            if "HTTP API on " in line:
                url.append(line.split("HTTP API on ")[1].strip())
            if "loaded" in line and url:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(300):
        proc.kill()
        raise SystemExit("the server did not start")
    return proc, url[0]


def mask_cost(engine, tokens: int) -> float:
    """Seconds per token of fill + unpack + accept for a json_object mask, driven by random logits."""
    import numpy as np

    from edge_os.runtime.request import OutputConstraint

    rng = np.random.default_rng(0)
    vocab = len(engine.grammars.mask(OutputConstraint("json_object")).allowed())
    total, n = 0.0, 0
    while n < tokens:
        mask = engine.grammars.mask(OutputConstraint("json_object"))
        for _ in range(tokens - n):
            logits = rng.standard_normal(vocab)
            t0 = time.perf_counter()
            allowed = mask.allowed()
            token = int(np.argmax(np.where(allowed, logits, -np.inf)))
            mask.accept(token)
            total += time.perf_counter() - t0
            n += 1
            if mask.terminated:
                break
    return total / n


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} [{min(values):.4g}-{max(values):.4g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", type=Path, help="package (default: the bundled SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    from edge_os.default_model import default_package
    from edge_os.runtime.request import OutputConstraint
    from edge_os.runtime.tvm_runtime import use_runtime_only_tvm

    package = args.model or default_package(separate_process=True)
    use_runtime_only_tvm()
    from edge_os.runtime.engine import Engine

    engine = Engine.load(package, threads=args.threads, context_tokens=1024)
    direct(engine, 4)  # warm-up
    d_ttft, d_tps, c_tps = [], [], []
    for _ in range(args.reps):
        ttft, tps = direct(engine, args.tokens)
        d_ttft.append(ttft)
        d_tps.append(tps)
    load_started = time.perf_counter()
    engine.grammars.mask(OutputConstraint("json_object"))
    first_constraint_s = time.perf_counter() - load_started
    for _ in range(args.reps):
        c_tps.append(direct(engine, args.tokens, OutputConstraint("json_object"))[1])
    per_token = mask_cost(engine, 200)
    engine.close()

    proc, url = start_server(package, args.threads)
    try:
        model = json.loads((package / "manifest.json").read_text())["name"]
        over_http(url, model, 4)  # warm-up
        h_ttft, h_tps = [], []
        for _ in range(args.reps):
            ttft, tps, _ = over_http(url, model, args.tokens)
            h_ttft.append(ttft)
            h_tps.append(tps)
    finally:
        proc.terminate()
        proc.wait(30)

    print(f"package {package.name}, {args.threads} threads, {args.tokens} tokens, median [min-max] of {args.reps}")
    print(f"direct  TTFT s      {med(d_ttft)}    decode tok/s {med(d_tps)}")
    print(f"HTTP    TTFT s      {med(h_ttft)}    decode tok/s {med(h_tps)}")
    print(f"json_object constrained decode tok/s {med(c_tps)} (unconstrained {med(d_tps)})")
    print(f"grammar mask per token: {per_token * 1e3:.3f} ms; first constrained request (import + tokenizer "
          f"info + compile): {first_constraint_s:.2f} s")


if __name__ == "__main__":
    main()
