"""edge-os demo"""

from __future__ import annotations

import io
import resource
import sys

SCRIPT = (
    "What is the capital of France?",
    "And what is it famous for? Answer in one sentence.",
    "Write a haiku about a small computer that runs a language model.",
)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="pack the bundled model (once) and chat with it",
                              description="The first thing to run: packs SmolLM2-135M-Instruct for this CPU "
                                          "(cached), loads it, and chats. Without a terminal it plays a short "
                                          "scripted conversation.")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--max-tokens", type=int, default=96, help="per answer (default 96)")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.default_model import default_package
    from edge_os.runtime.tvm_runtime import use_runtime_only_tvm

    package = default_package(separate_process=True)
    use_runtime_only_tvm()
    from edge_os.runtime.chat_repl import chat_loop
    from edge_os.runtime.engine import Engine
    from edge_os.runtime.request import SamplingParams

    engine = Engine.load(package, threads=args.threads)
    m = engine.manifest
    print(f"edge-os demo: {m.name} ({m.quantization['scheme']}, {m.memory.weight_bytes / 2**20:.0f} MiB of weights, "
          f"compiled for {m.target.tvm_target.get('mcpu')}), loaded in {engine.load_s:.2f} s from {package}")
    interactive = sys.stdin.isatty()
    lines = sys.stdin if interactive else io.StringIO("\n".join(SCRIPT) + "\n")
    if interactive:
        print("Type a message; an empty line ends the chat.")
    # The scripted session is greedy (the same answers every run); a mild repetition penalty keeps
    # a 135M model from looping on its own phrases, as greedy decoding otherwise does.
    sampling = (SamplingParams(temperature=0.0, repetition_penalty=1.1) if not interactive
                else SamplingParams(temperature=0.7, seed=None))
    chat_loop(engine, lines, sys.stdout, sampling, args.max_tokens, interactive)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS) of this process: {peak:.0f} MiB")
    return 0
