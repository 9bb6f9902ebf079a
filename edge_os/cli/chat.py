"""edge-os chat"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    from edge_os.cli.common import add_model_argument, add_sampling_arguments

    p = subparsers.add_parser("chat", help="chat with a model (streaming; keeps the KV cache between turns)",
                              description="Interactive chat. Each line you type is a user turn; an empty line "
                                          "or Ctrl-D ends the session. Without a terminal, each input line is a turn.")
    add_model_argument(p)
    add_sampling_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.cli.common import load_engine, sampling_from_args
    from edge_os.runtime.chat_repl import chat_loop

    engine = load_engine(args)
    chat_loop(engine, sys.stdin, sys.stdout, sampling_from_args(args), args.max_tokens,
              interactive=sys.stdin.isatty())
    return 0
