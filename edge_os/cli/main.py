"""Entry point of the `edge-os` command.

Each subcommand lives in its own module with a ``register(subparsers)`` function; add a module to
``COMMANDS`` to add a subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edge_os import __version__
from edge_os.config import env_help, settings
from edge_os.errors import EdgeOSError

# Module names under edge_os.cli, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "demo", "pack", "keys", "sign", "verify", "flash", "publish", "rollout", "device", "info", "generate", "chat", "perplexity", "sensors", "actuate", "serve", "ps", "cloud_worker",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-os",
        description="Pack, flash and run LLMs on edge devices under memory and thermal budgets.",
        epilog=env_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-os {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edge_os.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = "DEBUG" if args.verbose else settings().log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeOSError as exc:
        print(f"edge-os: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path that cannot be read or written: the user's to fix, not a bug
        where = f" {exc.filename}" if exc.filename else ""
        print(f"edge-os: error: cannot use{where}: {exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edge-os: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
