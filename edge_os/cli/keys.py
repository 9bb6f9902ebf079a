"""edge-os keys generate --out PREFIX"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("keys", help="make package-signing keys",
                              description="Manage Ed25519 keys that sign packages (docs/flash.md).")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="write PREFIX.key (private, mode 0600) and PREFIX.pub")
    gen.add_argument("--out", type=Path, required=True, metavar="PREFIX", help="path prefix of the two files")
    gen.add_argument("--force", action="store_true", help="replace existing key files")
    gen.set_defaults(func=run)


def run(args) -> int:
    from edge_os.deploy import keys

    private, public = keys.generate(args.out, force=args.force)
    print(f"{private}\n{public} (key id {keys.load_public(public).key_id})")
    return 0
