"""edge-os perplexity FILE"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    from edge_os.cli.common import add_model_argument

    p = subparsers.add_parser("perplexity", help="measure perplexity on a text file",
                              description="Tokenize FILE (no special tokens), cut it into consecutive windows of "
                                          "N tokens, score every token but the first of each window, print "
                                          "exp(mean negative log-likelihood).")
    p.add_argument("file", type=Path)
    add_model_argument(p, ctx_default="512, the window scored at once")
    p.set_defaults(ctx=512)
    p.add_argument("--json", action="store_true", help="print {perplexity, tokens}")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.cli.common import load_engine
    from edge_os.errors import InputError
    from edge_os.runtime.perplexity import perplexity

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {args.file} as UTF-8 text: {exc}") from exc
    engine = load_engine(args)
    show = (lambda i, n: print(f"\rwindow {i}/{n}", end="", file=sys.stderr)) if not args.json else None
    result = perplexity(engine, text, window=args.ctx, on_window=show)
    if show:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({"perplexity": result.perplexity, "tokens": result.tokens}))
    else:
        print(f"perplexity {result.perplexity:.4f} over {result.tokens} tokens "
              f"({result.windows} windows of {args.ctx})")
    return 0
