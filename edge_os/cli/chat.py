"""edge-os chat"""

from __future__ import annotations

import sys

from edge_os.cli.common import SamplingDefaults, add_model_argument, add_sampling_arguments

# A small model answers best close to greedy: at 0.8 SmolLM2-135M answered "What is the capital of
# France?" in French for 7 of 8 seeds. A mild repetition penalty keeps it from looping.
CHAT_DEFAULTS = SamplingDefaults(temperature=0.3, top_k=40, top_p=0.9, repeat_penalty=1.1, max_tokens=256)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "chat", help="chat with a model (streaming; keeps the KV cache between turns)",
        description="Interactive chat with line editing and history. Commands: /help, /clear, "
                    "/set temperature 0.3, /quit. Ctrl-C stops an answer; Ctrl-D, /quit or Ctrl-C at an "
                    "empty prompt leave. Without a terminal, each input line is a turn.")
    add_model_argument(p)
    add_sampling_arguments(p, CHAT_DEFAULTS)
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.cli.chat_repl import ChatOptions, chat_loop
    from edge_os.cli.common import load_engine, sampling_from_args
    from edge_os.config import settings

    options = ChatOptions(sampling_from_args(args), args.max_tokens, tuple(args.stop), args.ignore_eos)
    engine = load_engine(args)
    chat_loop(engine, sys.stdin, sys.stdout, options, interactive=sys.stdin.isatty(),
              history=settings().home / "chat_history")
    return 0
