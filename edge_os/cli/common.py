"""Argument helpers shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", type=Path, metavar="PACKAGE",
                        help="model package directory (default: the bundled SmolLM2-135M, packed on first use)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: EDGE_OS_THREADS or all cores)")
    parser.add_argument("--ctx", type=int, default=None, metavar="N",
                        help="context window in tokens for the KV cache (default: 2048)")


def load_engine(args: argparse.Namespace):
    from edge_os.default_model import default_package
    from edge_os.runtime.tvm_runtime import use_runtime_only_tvm  # here: other commands start faster without it

    package = args.model if args.model else default_package(separate_process=True)
    use_runtime_only_tvm()
    from edge_os.runtime.engine import Engine

    return Engine.load(package, threads=args.threads, context_tokens=args.ctx)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--max-tokens", type=int, default=256, metavar="N", help="stop after N tokens (default 256)")
    group.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    group.add_argument("--top-k", type=int, default=40, help="0 = off (default 40)")
    group.add_argument("--top-p", type=float, default=0.95, help="1 = off (default 0.95)")
    group.add_argument("--repeat-penalty", type=float, default=1.0, help="1 = off (default 1.0)")
    group.add_argument("--seed", type=int, default=None, help="random seed for reproducible sampling")
    group.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    group.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence tokens")


def sampling_from_args(args: argparse.Namespace):
    from edge_os.runtime.request import SamplingParams

    return SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          repetition_penalty=args.repeat_penalty, seed=args.seed)
