"""Entry point of the `edge-os` command.

Each subcommand lives in its own module with a ``register(subparsers)`` function; add a module to
``COMMANDS`` to add a subcommand. Every command module is imported to build the parser, so a
module's top level and its ``register`` import only light modules (argparse, edge_os.config,
edge_os.errors...); TVM, numpy, paho-mqtt, pyserial and the like are imported inside ``run``.
``tests/integration/test_cli_imports.py`` holds this.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from edge_os import __version__
from edge_os.config import env_help, settings
from edge_os.errors import EdgeOSError
from edge_os.safe_text import terminal_safe

# Module names under edge_os.cli, in the order --help lists them.
COMMANDS: tuple[str, ...] = (
    "demo", "pack", "pull", "list_models", "rm", "prune", "info",
    "keys", "sign", "verify", "flash", "publish", "rollout", "device", "bundle", "emulate",
    "generate", "chat", "perplexity", "infer", "serve", "ps", "cloud_worker", "sensors", "actuate", "agent",
    "audit",
)


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line, like every other error (subcommands' parsers inherit this)."""

    def error(self, message: str):
        self.exit(2, f"edge-os: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge-os",
        description="Pack, sign, flash and run LLMs on edge devices under memory and thermal budgets.",
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
        print(f"edge-os: error: {terminal_safe(str(exc))}", file=sys.stderr)  # may quote a device's text
        return 1
    except OSError as exc:  # a path that cannot be read or written: the user's to fix, not a bug
        where = f" {exc.filename}" if exc.filename else ""
        print(f"edge-os: error: cannot use{where}: {exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edge-os: interrupted", file=sys.stderr, flush=True)
        _quiet_teardown()
        return 130


def _quiet_teardown() -> None:
    """After the one line, the interpreter's teardown stays silent: TVM's C++ destructors warn
    about work that Ctrl-C cut short, which says nothing to the user."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stderr.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
