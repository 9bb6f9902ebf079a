"""edge-os sign PACKAGE --key PREFIX.key"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("sign", help="sign a package's manifest",
                              description="Write manifest.sig, an Ed25519 signature over manifest.json, which "
                                          "lists the sha256 and size of every file of the package.")
    p.add_argument("package", type=Path, help="package directory")
    p.add_argument("--key", type=Path, required=True, help="private key (PREFIX.key from `edge-os keys generate`)")
    p.add_argument("--version", type=int, default=None,
                   help="set the release number first (devices refuse a lower one than they run)")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.deploy.signing import sign_package

    sig = sign_package(args.package, args.key, version=args.version)
    print(f"signed {args.package} with key {sig.key_id}")
    return 0
