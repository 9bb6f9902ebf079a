#!/usr/bin/env python3
"""Serving many requests at once, over HTTP, in one interleaved run.

1. Aggregate decode tok/s at N = 1, 2, 4, 8 concurrent streamed requests of ``--tokens`` tokens
   each (greedy, ignore_eos): all completion tokens over the wall time from sending the N requests
   to the last token. edge-os through `edge-os serve --http`; llama.cpp's `llama-server` (given
   with ``--llama-server``, continuous batching, ``-np 8`` slots) on the same GGUF with the same
   threads. ``--reps`` rounds, each of every N in turn, the two servers in turn at each N; the
   N=4 / N=1 ratio is taken within each round (seconds apart), so a host whose speed drifts moves
   both of its terms.
2. Time to first token of a request whose ~400-token system prompt another request used just
   before (its KV pages come from the prefix cache; the question is another, so the request is not
   a whole-prompt repeat, which would be answered from the kept logits alone), against the same
   kind of request cold (a system prompt never seen).
3. p50/p99 inter-token latency of 4 running streams while a ~1,500-token prompt arrives, with
   whole-prompt prefill (EDGE_OS_PREFILL_CHUNK=0) and with the prompt fed a few tokens per decode
   step (the default).

The host's load average is printed with the figures: on a shared machine they move with it.

    .venv/bin/python tools/bench_serve_many.py --threads 2
    .venv/bin/python tools/bench_serve_many.py --threads 2 --llama-server /path/to/llama-server
    .venv/bin/python tools/bench_serve_many.py --threads 2 --reps 2 --throughput-only   # part 1 only
    .venv/bin/python tools/bench_serve_many.py --threads 2 --throughput-only --temperature 1   # sampled
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

CONCURRENCY = (1, 2, 4, 8)  # streams at once, part 1
QUESTION = "Write a long story about a gardener who grows basil on a windowsill."
SYSTEM = ("You are the assistant of a smart home hub number {n}. You answer questions about the sensors, the "
          "lights, the doors and the heating of the house in one or two short sentences. You never invent a "
          "reading you were not given, and you say so when a sensor does not answer. ")


def stream(url: str, model: str, messages: list[dict], max_tokens: int, stamps: list[float],
           temperature: float = 0.0) -> int:
    """Send one streamed chat request (greedy unless ``temperature``; no other sampling field, as
    an OpenAI client sends it); appends the time of every content chunk; returns tokens."""
    from sse_stream import stream_chat

    body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    return stream_chat(url, body, stamps)


def concurrent(url: str, model: str, n: int, max_tokens: int, temperature: float = 0.0) -> float:
    """Aggregate tok/s of ``n`` concurrent requests: all their tokens over the wall time."""
    results = [0] * n
    stamps: list[list[float]] = [[] for _ in range(n)]
    errors: list[Exception] = []

    def one(i: int) -> None:
        try:
            results[i] = stream(url, model, [{"role": "user", "content": f"{i}. {QUESTION}"}], max_tokens,
                                stamps[i], temperature)
        except Exception as exc:  # raised again on the caller's thread, where the run stops
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(results) / (max(s[-1] for s in stamps) - started)


def ttft(url: str, model: str, system: str, question: str = QUESTION) -> float:
    stamps: list[float] = []
    started = time.perf_counter()
    stream(url, model, [{"role": "system", "content": system}, {"role": "user", "content": question}], 4, stamps)
    return stamps[0] - started


def itl_with_long_prompt(url: str, model: str, max_tokens: int) -> tuple[float, float, float, float]:
    """p50, p99 and longest inter-token gap (s) of 4 streams while a ~1,500-token prompt arrives;
    the long prompt's TTFT."""
    stamps: list[list[float]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=stream, args=(url, model, [{"role": "user", "content": f"{i}. {QUESTION}"}],
                                                     max_tokens, stamps[i])) for i in range(4)]
    for t in threads:
        t.start()
    while min(len(s) for s in stamps) < 8:  # all four are decoding
        time.sleep(0.01)
    # 1,500 tokens in 3,000 bytes: the scheduler reserves KV by UTF-8 bytes, and this lets the long
    # prompt start beside the four streams in a 8,192-token context.
    long_text = "a " * 1500 + "\nHow many letters?"
    long_stamps: list[float] = []
    sent = time.perf_counter()
    stream(url, model, [{"role": "user", "content": long_text}], 2, long_stamps)
    for t in threads:
        t.join()
    gaps = sorted(b - a for s in stamps for a, b in zip(s[4:], s[5:], strict=False))
    p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    return statistics.median(gaps), p99, gaps[-1], long_stamps[0] - sent


def start_edge_os(package: Path, threads: int, chunk: int | None) -> tuple[subprocess.Popen, str]:
    sock = Path(tempfile.mkdtemp(prefix="eos-bench-")) / "s.sock"
    name = json.loads((package / "manifest.json").read_text())["name"]
    env = {**os.environ, "EDGE_OS_LOG_LEVEL": "INFO"}
    if chunk is not None:
        env["EDGE_OS_PREFILL_CHUNK"] = str(chunk)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", str(package), "--http", "127.0.0.1:0",
         "--threads", str(threads), "--context", "8192", "--socket", str(sock), "--preload", name],
        stderr=subprocess.PIPE, text=True, env=env)
    return proc, _wait_for(proc, "HTTP API on ", lambda line: "loaded" in line)


def start_llama_server(binary: str, gguf: Path, threads: int, slots: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-m", str(gguf), "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-cb",
         "-c", str(2048 * slots), "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    # "server is listening" (older llama-server), "listening on http://..." (the 0.3.36 sdist's)
    _wait_for(proc, None, lambda line: "listening on http" in line or "server is listening" in line)
    return proc, f"http://127.0.0.1:{port}"


def _wait_for(proc: subprocess.Popen, url_marker: str | None, ready_when) -> str:
    url: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            if url_marker and url_marker in line:
                url.append(line.split(url_marker)[1].strip())
            if ready_when(line) and (url or not url_marker):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(600):
        proc.kill()
        raise SystemExit(f"{proc.args[0]} did not start")
    return url[0] if url else ""


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", type=Path, help="package (default: the bundled SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="part 1: sampled requests at this temperature, no other sampling field (an OpenAI "
                             "client's defaults; each server applies its own defaults for top-k and top-p); "
                             "default 0, greedy")
    parser.add_argument("--latency-only", action="store_true", help="only part 3 (inter-token latency)")
    parser.add_argument("--throughput-only", action="store_true", help="only part 1 (aggregate tok/s)")
    parser.add_argument("--llama-server", help="a llama-server binary to compare with (same GGUF, same threads)")
    args = parser.parse_args()
    if not args.temperature >= 0:
        parser.error(f"--temperature must be 0 (greedy) or more, not {args.temperature}")

    from edge_os.default_model import default_package

    package = args.model or default_package(separate_process=True)
    model = json.loads((package / "manifest.json").read_text())["name"]
    print(f"package {package.name}, {args.threads} threads, {args.tokens}-token requests; load average {load()}")

    if not args.latency_only:
        throughput_and_ttft(args, package, model)
    if not args.throughput_only:
        latency(args, package, model)


def throughput_and_ttft(args, package: Path, model: str) -> None:
    edge, edge_url = start_edge_os(package, args.threads, None)
    llama = llama_url = None
    if args.llama_server:
        from edge_os.default_model import bundled_gguf

        llama, llama_url = start_llama_server(args.llama_server, bundled_gguf(), args.threads, 8)
    try:
        concurrent(edge_url, model, 1, 8)  # warm-up
        if llama_url:
            concurrent(llama_url, "x", 1, 8)
        rows = {}
        for rep in range(args.reps):  # interleaved: each N in turn, each server in turn at each N
            for n in CONCURRENCY:
                rows.setdefault(("edge-os", n), []).append(
                    concurrent(edge_url, model, n, args.tokens, args.temperature))
                if llama_url:
                    rows.setdefault(("llama-server", n), []).append(
                        concurrent(llama_url, "x", n, args.tokens, args.temperature))
            print(f"round {rep + 1} of {args.reps} done   (load {load()})", flush=True)
        for n in CONCURRENCY:
            print(f"N={n}: " + "  ".join(f"{who} {statistics.median(v):.1f} tok/s [{min(v):.1f}-{max(v):.1f}]"
                                         for (who, m), v in rows.items() if m == n))
        # Each round's N=4 over the same round's N=1, taken seconds apart: a drifting host moves both.
        ratios = [four / one for four, one in zip(rows[("edge-os", 4)], rows[("edge-os", 1)], strict=True)]
        print(f"edge-os N=4 / N=1, per round: median {statistics.median(ratios):.2f}x "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]")
        if args.throughput_only:
            return

        cold, cached = [], []
        for rep in range(args.reps):
            system = SYSTEM.format(n=rep) * 7  # about 415 tokens, new to the server
            cold.append(ttft(edge_url, model, system))
            cached.append(ttft(edge_url, model, system, "Is the kitchen light on?"))  # system prompt cached
        c, w = statistics.median(cold), statistics.median(cached)
        print(f"TTFT with a ~400-token system prompt: cold {c * 1e3:.0f} ms, cached {w * 1e3:.0f} ms "
              f"({w / c:.0%} of cold)   (load {load()})")
    finally:
        stop(edge)
        if llama is not None:
            stop(llama)


def latency(args, package: Path, model: str) -> None:
    for chunk in (0, None):
        edge, edge_url = start_edge_os(package, args.threads, chunk)
        try:
            concurrent(edge_url, model, 1, 8)
            p50, p99, longest, long_ttft = itl_with_long_prompt(edge_url, model, args.tokens)
        finally:
            stop(edge)
        what = "whole-prompt prefill" if chunk == 0 else "prompt in the decode steps"
        print(f"4 streams + a 1,500-token prompt, {what}: inter-token p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms "
              f"(p99/p50 {p99 / p50:.1f}), longest {longest * 1e3:.0f} ms; the long prompt's TTFT {long_ttft:.2f} s"
              f"   (load {load()})")


if __name__ == "__main__":
    main()
