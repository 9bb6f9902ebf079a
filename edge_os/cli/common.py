"""Argument helpers shared by several subcommands."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from edge_os.runtime.kv_pool import DEFAULT_CONTEXT
from edge_os.runtime.request import SamplingParams


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_or_random(text: str) -> int | None:
    """argparse type: a seed >= 0, or -1 for a random one (llama.cpp's convention)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be >= 0, or -1 for a random seed; got {value}")
    return None if value == -1 else value


def add_model_argument(
    parser: argparse.ArgumentParser, ctx_default: str = f"{DEFAULT_CONTEXT}, or the model's maximum if smaller"
) -> None:
    parser.add_argument("-m", "--model", metavar="MODEL",
                        help="a stored model's NAME[:TAG] or a package directory "
                             "(default: the bundled SmolLM2-135M, packed on first use)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads (default: EDGE_OS_THREADS or all cores)")
    parser.add_argument("--ctx", type=positive_int, default=None, metavar="N",
                        help=f"context window in tokens, 16 up to the model's maximum (default: {ctx_default})")


def load_engine(args: argparse.Namespace):
    from edge_os.default_model import default_package
    from edge_os.runtime.tvm_runtime import use_runtime_only_tvm
    from edge_os.store.resolve import hold_package, resolve_model

    if args.model:
        package = resolve_model(args.model)
    else:
        package = default_package(separate_process=True)
        hold_package(package)
    use_runtime_only_tvm()
    from edge_os.runtime.engine import Engine

    return Engine.load(package, threads=args.threads, context_tokens=args.ctx)


@dataclass(frozen=True)
class SamplingDefaults:
    """What a command samples with when no option says otherwise (shown in its --help)."""

    temperature: float = SamplingParams.temperature  # the library's defaults, written once there
    top_k: int = SamplingParams.top_k
    top_p: float = SamplingParams.top_p
    repeat_penalty: float = SamplingParams.repetition_penalty
    max_tokens: int = 256


def add_sampling_arguments(parser: argparse.ArgumentParser, defaults: SamplingDefaults = SamplingDefaults()) -> None:
    d = defaults
    group = parser.add_argument_group("sampling")
    group.add_argument("--max-tokens", type=int, default=d.max_tokens, metavar="N",
                       help=f"stop after N tokens (default {d.max_tokens})")
    group.add_argument("--temperature", type=float, default=d.temperature, metavar="T",
                       help=f"0 = greedy (default {d.temperature})")
    group.add_argument("--top-k", type=int, default=d.top_k, metavar="K", help=f"0 = off (default {d.top_k})")
    group.add_argument("--top-p", type=float, default=d.top_p, metavar="P", help=f"1 = off (default {d.top_p})")
    group.add_argument("--repeat-penalty", type=float, default=d.repeat_penalty, metavar="R",
                       help=f"1 = off (default {d.repeat_penalty})")
    group.add_argument("--seed", type=seed_or_random, default=None, metavar="N",
                       help="random seed for reproducible sampling; -1 = random (the default)")
    group.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    group.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence tokens")


def sampling_from_args(args: argparse.Namespace):
    return SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          repetition_penalty=args.repeat_penalty, seed=args.seed)
