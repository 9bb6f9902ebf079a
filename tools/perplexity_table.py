#!/usr/bin/env python3
"""Perplexity of edge-os packages next to llama.cpp's ``llama-perplexity`` on the same GGUF and text.

Both sides score the text the way ``llama-perplexity`` does: the tokens (with BOS when the GGUF asks
for one) cut into chunks of ``--ctx``, each chunk's first token replaced by BOS, and only the second
half of each chunk scored. edge-os packs each GGUF with ``--quant auto`` (its blocks kept as they are)
into a temporary directory. Prints a Markdown table (docs/models.md) and, with ``--json``, the figures.

    bash tools/build_llamacpp.sh --tools              # once: llama-quantize, llama-perplexity
    .venv/bin/python tools/perplexity_table.py --q4-k-m            # SmolLM2 Q4_K_M made from the bundled GGUF
    .venv/bin/python tools/perplexity_table.py --q5-k-m            # and Q5_K_M
    .venv/bin/python tools/perplexity_table.py --model "Gemma 3 270M=/path/gemma-3-270m-it-Q4_K_M.gguf"

``--q4-k-m`` makes ``SmolLM2-135M-Instruct.Q4_K_M.gguf`` (in ``--work``) from the bundled Q4_1 file with
``llama-quantize --allow-requantize ... Q4_K_M``, so the K-quant file is reproducible from what the
project ships; ``--q5-k-m`` the same with ``Q5_K_M``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "tests" / "data" / "declaration_of_independence.txt"
DEFAULT_BIN = Path.home() / ".cache" / "edge-os" / "llama.cpp-0.3.36" / "build" / "bin"


def make_q4_k_m(bin_dir: Path, work: Path) -> Path:
    """SmolLM2 Q4_K_M from the bundled GGUF (its Q4_1 blocks re-quantized by llama.cpp)."""
    return make_k_quant(bin_dir, work, "Q4_K_M")


def make_k_quant(bin_dir: Path, work: Path, kind: str) -> Path:
    """SmolLM2 in llama.cpp's ``kind`` (``Q4_K_M``, ``Q5_K_M``, ...) from the bundled GGUF."""
    from edge_os.default_model import bundled_gguf

    out = work / f"SmolLM2-135M-Instruct.{kind}.gguf"
    if not out.exists():
        partial = out.with_suffix(".partial")
        subprocess.run([str(bin_dir / "llama-quantize"), "--allow-requantize", str(bundled_gguf()), str(partial),
                        kind], check=True, stdout=subprocess.DEVNULL)
        partial.rename(out)
    return out


def tensor_types(gguf_path: Path) -> str:
    """'Q5_0 ×120, Q4_K ×20, ...' of the file's 2-D tensors."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    counts = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) == 2)
    return ", ".join(f"{name} ×{count}" for name, count in counts.most_common())


def llamacpp_perplexity(bin_dir: Path, gguf_path: Path, ctx: int, threads: int) -> tuple[float, int]:
    run = subprocess.run([str(bin_dir / "llama-perplexity"), "-m", str(gguf_path), "-f", str(TEXT), "-c", str(ctx),
                          "-b", str(ctx), "-t", str(threads)], capture_output=True, text=True, check=True)
    estimate = re.search(r"Final estimate: PPL = ([0-9.]+)", run.stdout + run.stderr)
    chunks = re.search(r"calculating perplexity over (\d+) chunks", run.stdout + run.stderr)
    if estimate is None or chunks is None:
        raise SystemExit(f"llama-perplexity printed no estimate:\n{(run.stdout + run.stderr)[-2000:]}")
    return float(estimate.group(1)), int(chunks.group(1))


def edge_os_perplexity(package: Path, ctx: int, threads: int) -> tuple[float, int]:
    """The text scored as llama-perplexity scores it, by the edge-os runtime."""
    from edge_os.runtime.engine import Engine
    from edge_os.runtime.perplexity import log_softmax

    engine = Engine.load(package, threads=threads, context_tokens=ctx)
    ids = engine.tokenizer.encode(TEXT.read_text(), add_special_tokens=False).ids
    if engine.bos_id is not None:
        ids = [engine.bos_id, *ids]
    first, nll, scored = ctx // 2, 0.0, 0
    chunks = len(ids) // ctx
    for chunk in range(chunks):
        window = ids[chunk * ctx:(chunk + 1) * ctx]
        if engine.bos_id is not None:
            window[0] = engine.bos_id
        engine.runner.add_sequence(-1)
        try:
            logits = engine.runner.prefill(-1, window, all_logits=True)
        finally:
            engine.runner.remove_sequence(-1)
        logp = log_softmax(logits[first:ctx - 1].astype("float64"))
        nll -= float(logp[range(ctx - 1 - first), window[first + 1:]].sum())
        scored += ctx - 1 - first
    return math.exp(nll / scored), chunks


def pack_gguf(gguf_path: Path, out: Path, activations: str = "int16") -> Path:
    from edge_os.package.pack import PackOptions, pack

    return pack(PackOptions(gguf_path, out, quant="auto", activations=activations, progress=False, force=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=GGUF", help="a GGUF to measure")
    parser.add_argument("--q4-k-m", action="store_true", help="measure SmolLM2 Q4_K_M made from the bundled GGUF")
    parser.add_argument("--q5-k-m", action="store_true", help="measure SmolLM2 Q5_K_M made from the bundled GGUF")
    parser.add_argument("--bin", type=Path, default=DEFAULT_BIN, help=f"llama.cpp binaries (default {DEFAULT_BIN})")
    parser.add_argument("--work", type=Path, default=None, help="where the Q4_K_M file and packages go (default: temp)")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--activations", default="int16", choices=["int16", "float32", "int8"],
                        help="pack --activations (default int16); x86 rounds prefill chunks of up to 256 "
                             "tokens too, so --ctx 256 scores the rounding, 512 the float32 prefill path")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ppl-table-"))
    work.mkdir(parents=True, exist_ok=True)
    models = [tuple(m.split("=", 1)) for m in args.model]
    if args.q4_k_m:
        models.insert(0, ("SmolLM2-135M-Instruct Q4_K_M", str(make_q4_k_m(args.bin, work))))
    if args.q5_k_m:
        models.insert(int(args.q4_k_m), ("SmolLM2-135M-Instruct Q5_K_M", str(make_k_quant(args.bin, work, "Q5_K_M"))))
    if not models:
        parser.error("give --q4-k-m, --q5-k-m or --model LABEL=GGUF")
    rows = []
    for label, path in models:
        gguf_path = Path(path)
        package = pack_gguf(gguf_path, work / f"pkg-{gguf_path.stem}-{args.activations}", args.activations)
        ours, chunks = edge_os_perplexity(package, args.ctx, args.threads)
        theirs, their_chunks = llamacpp_perplexity(args.bin, gguf_path, args.ctx, args.threads)
        not_kept = json.loads((package / "manifest.json").read_text())["quantization"].get("not_kept", {})
        rows.append({"model": label, "gguf": gguf_path.name, "types": tensor_types(gguf_path),
                     "edge_os": ours, "llama_cpp": theirs, "difference_pct": 100 * (ours / theirs - 1),
                     "chunks": [chunks, their_chunks], "not_kept": len(not_kept)})
        print(f"{label}: edge-os {ours:.4f}, llama.cpp {theirs:.4f}", file=sys.stderr, flush=True)
    print(f"| model | GGUF (2-D tensor types) | edge-os | llama.cpp | difference | chunks of {args.ctx} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | `{r['gguf']}` ({r['types']}; not kept: {r['not_kept']}) | {r['edge_os']:.4f} "
              f"| {r['llama_cpp']:.4f} | {r['difference_pct']:+.2f}% | {r['chunks'][0]} / {r['chunks'][1]} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
