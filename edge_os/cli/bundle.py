"""edge-os bundle --target T --out DIR"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle", help="write the runtime bundle a device installs (code, wheels, install.sh)",
        description="Write what a device needs to run packages without the compiler: the edge-os runtime code, "
                    "its dependencies as wheels for the device's CPU and Python, and an install.sh that installs "
                    "them into a virtual environment there. Wheels come from the package index.")
    p.add_argument("--target", required=True, help="device target name or descriptor .toml path")
    p.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.deploy.bundle import write_bundle
    from edge_os.targets import load_target

    bundle = write_bundle(load_target(args.target), args.out, force=args.force)
    print(f"{bundle.path} ({bundle.size_bytes() / 1e6:.0f} MB; on the device: sh install.sh [DEST])")
    return 0
