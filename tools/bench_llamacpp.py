#!/usr/bin/env python3
"""Benchmark llama.cpp (llama-cpp-python) on the same GGUF, prompt and measures as tools/bench.py.

The reference edge-os is compared against (tools/compare.py runs both). Build llama-cpp-python
from its sdist first: ``bash tools/build_llamacpp.sh``; it is never a runtime dependency.
Measures: model load time, prefill tok/s for 128- and 512-token prompts, time to first token of a
128-token prompt, greedy decode tok/s over N tokens after a context, peak RSS. Same keys as
tools/bench.py; JSON with --json.

    .venv/bin/python tools/bench_llamacpp.py --threads 2 --reps 3 --decode-tokens 128 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import print_report, summary  # noqa: E402  (the same report as tools/bench.py)

TEXT = (Path(__file__).resolve().parent.parent / "tests" / "data" / "declaration_of_independence.txt").read_text()


def prompt_ids(llm, n: int) -> list[int]:
    """The first ``n`` tokens of the benchmark text, repeated as needed (as tools/bench.py)."""
    ids = llm.tokenize(TEXT.encode(), add_bos=False, special=False)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def _last_logits(llm):
    """The last evaluated token's logits, copied out as edge-os's runner does (this version of
    llama-cpp-python keeps ``Llama.scores`` only with ``logits_all``)."""
    import numpy as np

    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()


def time_prefill(llm, ids: list[int]) -> float:
    llm.reset()
    started = time.perf_counter()
    llm.eval(ids)
    return len(ids) / (time.perf_counter() - started)


def time_ttft(llm, ids: list[int]) -> float:
    """Prompt in, first greedy token id out (the prompt not cached)."""
    llm.reset()
    started = time.perf_counter()
    llm.eval(ids)
    int(_last_logits(llm).argmax())
    return time.perf_counter() - started


def time_decode(llm, context: list[int], tokens: int) -> float:
    """Greedy decode ``tokens`` tokens after ``context``: tok/s of the decode steps alone."""
    llm.reset()
    llm.eval(context)
    token = int(_last_logits(llm).argmax())
    started = time.perf_counter()
    for _ in range(tokens):
        llm.eval([token])
        token = int(_last_logits(llm).argmax())
    return tokens / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", type=Path, help="GGUF file (default: the bundled SmolLM2-135M Q4_1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--decode-context", type=int, default=0, help="tokens already in the context when decoding")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    try:
        from llama_cpp import Llama, __version__
    except ImportError:
        print("llama-cpp-python is not installed: run `bash tools/build_llamacpp.sh`", file=sys.stderr)
        return 2
    from edge_os.default_model import bundled_gguf

    model = args.model or bundled_gguf()
    n_ctx = max(2048, args.decode_context + args.decode_tokens + 64)
    started = time.perf_counter()
    llm = Llama(model_path=str(model), n_ctx=n_ctx, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    load_s = time.perf_counter() - started
    p128, p512 = prompt_ids(llm, 128), prompt_ids(llm, 512)
    context = prompt_ids(llm, max(args.decode_context, 1))
    time_decode(llm, p128[:8], 8)  # warm-up
    results = {"prefill128_tok_s": [], "prefill512_tok_s": [], "ttft128_s": [], "decode_tok_s": []}
    for _ in range(args.reps):
        results["prefill128_tok_s"].append(time_prefill(llm, p128))
        results["prefill512_tok_s"].append(time_prefill(llm, p512))
        results["ttft128_s"].append(time_ttft(llm, p128))
        results["decode_tok_s"].append(time_decode(llm, context, args.decode_tokens))
    report = {
        "engine": f"llama-cpp-python {__version__}", "model": str(model), "threads": args.threads,
        "reps": args.reps, "decode_tokens": args.decode_tokens, "decode_context": args.decode_context,
        "load_s": load_s, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{k: summary(v) for k, v in results.items()},
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print_report(f"llama.cpp bench: {model} (threads {args.threads}, {args.reps} reps)", report, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
