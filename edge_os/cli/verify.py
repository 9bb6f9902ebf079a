"""edge-os verify PACKAGE --trust PUB"""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="check a package's signature and every file",
                              description="Check the signature of manifest.json against trusted keys, every "
                                          "file's size and sha256, and that nothing unlisted is in the package. "
                                          "Prints one line per problem.")
    p.add_argument("package", type=Path, help="package directory")
    p.add_argument("--trust", type=Path, action="append", required=True, metavar="PUB",
                   help="trusted public key (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.deploy.keys import load_public
    from edge_os.deploy.signing import verify_package

    problems = verify_package(args.package, [load_public(p) for p in args.trust])
    for problem in problems:
        print(f"edge-os: error: {args.package}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.package}: signature and all files OK")
    return 1 if problems else 0
