"""edge-os chat"""

from __future__ import annotations

import sys

from edge_os.cli.common import SamplingDefaults, add_model_argument, add_sampling_arguments

# The bundled 135M model answers best greedily. Asked "What is the capital of France?" with 8 seeds,
# it began "The capital of France is Paris." 2 times in 8 at temperature 0.8 (the rest in French),
# 4 at 0.2, 6 at 0.1, and every time greedily; a mild repetition penalty keeps greedy decoding
# from looping on its own phrases. `/set temperature 0.7` brings variety back.
CHAT_DEFAULTS = SamplingDefaults(temperature=0.0, top_k=40, top_p=0.95, repeat_penalty=1.1, max_tokens=256)


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
