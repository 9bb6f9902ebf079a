"""edge-os emulate --target T -- COMMAND ..."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "emulate", help="run an edge-os command as an aarch64 board would, under qemu-user",
        description="Run an edge-os command in an aarch64 CPython under qemu-aarch64-static, with the device "
                    "bundle's runtime and wheels and TVM's runtime library only (no compiler), as the board runs "
                    "it. The aarch64 userland and the bundle are made once and cached under $EDGE_OS_HOME/emulate. "
                    "Emulated code runs several times slower than the device.",
        epilog="example: edge-os emulate --target rpi5 -- generate -m PKG --temperature 0 \"Hello\"")
    p.add_argument("--target", required=True, help="an aarch64 target name or descriptor .toml path (rpi5, aarch64)")
    p.add_argument("--bundle", type=Path, default=None,
                   help="run from this bundle (`edge-os bundle`) instead of the cached one")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the edge-os command and its arguments, after --")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.config import settings
    from edge_os.deploy.bundle import Bundle
    from edge_os.deploy.emulate import Emulator, check_emulation
    from edge_os.errors import InputError
    from edge_os.targets import load_target

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise InputError("emulate needs an edge-os command after --, e.g. `edge-os emulate --target rpi5 -- info PKG`")
    target = load_target(args.target)
    check_emulation(target)
    bundle = Bundle.read(args.bundle) if args.bundle else None
    return Emulator(target, settings().home, bundle).edge_os(command).returncode
