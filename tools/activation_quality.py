#!/usr/bin/env python3
"""What rounding activations costs: packages of one model decoded teacher-forced on the same text.

Each package decodes the first ``--tokens`` tokens of a text one token at a time (the decode path,
where ``pack --activations`` applies), fed the text's own next token at every step. Against the
first package (pack one with ``--activations float32`` as the reference) it reports the mean and
largest change of any logit, how often the top token stays the same, and the perplexity of the
text over those steps.

    .venv/bin/edge-os pack GGUF --out /tmp/f32 --activations float32
    .venv/bin/edge-os pack GGUF --out /tmp/i16                           # int16, the default
    .venv/bin/edge-os pack GGUF --out /tmp/i8 --activations int8
    .venv/bin/python tools/activation_quality.py /tmp/f32 /tmp/i16 /tmp/i8 [--tokens 300] [--text FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "tests" / "data" / "declaration_of_independence.txt"


def teacher_forced_logits(package: Path, ids: list[int], threads: int) -> np.ndarray:
    """Logits after each of ``ids[:-1]``: the first prefilled, every later one decoded."""
    from edge_os.package.reader import open_package, read_params
    from edge_os.runtime.runner import CacheShape, ModelRunner

    manifest = open_package(package)
    runner = ModelRunner(package / manifest.library, read_params(package, manifest),
                         CacheShape(max_batch_size=1, max_total_tokens=len(ids) + 16), threads)
    runner.add_sequence(0)
    first = np.asarray(runner.prefill(0, ids[:1]), np.float64)
    rows = [first.reshape(-1, first.shape[-1])[-1]]
    rows += [np.asarray(runner.decode([0], [token]), np.float64).reshape(-1) for token in ids[1:-1]]
    return np.stack(rows)


def perplexity(logits: np.ndarray, following: np.ndarray) -> float:
    top = logits.max(-1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
    return float(np.exp((log_norm - logits[np.arange(len(following)), following]).mean()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs="+", type=Path, help="the reference package first")
    parser.add_argument("--tokens", type=int, default=300, help="tokens of the text to decode (default 300, >= 2)")
    parser.add_argument("--text", type=Path, default=TEXT, help="default: tests/data/declaration_of_independence.txt")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.tokens < 2:
        parser.error("--tokens must be at least 2 (one fed, one predicted)")
    for package in args.packages:
        if not (package / "manifest.json").is_file():
            parser.error(f"{package} is not a package directory (no manifest.json); make one with edge-os pack")
    sys.path.insert(0, str(ROOT))
    from tokenizers import Tokenizer

    from edge_os.errors import EdgeOSError

    tokenizer = Tokenizer.from_file(str(args.packages[0] / "tokenizer.json"))
    ids = tokenizer.encode(args.text.read_text()).ids[: args.tokens]
    if len(ids) < 2:
        raise SystemExit(f"{args.text} has fewer than 2 tokens: give a longer --text")
    following = np.array(ids[1:])
    reference = None
    print(f"{len(ids) - 1} steps of {args.text.name}, against {args.packages[0]}")
    print("| package | mean / max logit change | argmax kept | perplexity |")
    print("| --- | --- | --- | --- |")
    for package in args.packages:
        try:
            logits = teacher_forced_logits(package, ids, args.threads)
        except EdgeOSError as exc:
            raise SystemExit(f"{package}: {exc}") from None
        reference = logits if reference is None else reference
        if logits.shape != reference.shape:
            raise SystemExit(f"{package} has {logits.shape[1]} logits a token, {args.packages[0]} "
                             f"{reference.shape[1]}: compare packages of one model")
        change = np.abs(logits - reference)
        kept = np.mean(logits.argmax(-1) == reference.argmax(-1))
        print(f"| {package} | {change.mean():.4f} / {change.max():.3f} | {kept:.1%} | "
              f"{perplexity(logits, following):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
