"""edge-os publish PACKAGE --http ADDR"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("publish", help="serve a signed package over HTTP for over-the-air installs",
                              description="Serve the package's manifest, signature and listed files over HTTP "
                                          "with Range requests, for devices running `edge-os device ota`.")
    p.add_argument("package", type=Path, help="signed package directory")
    p.add_argument("--http", required=True, metavar="HOST:PORT", help="address to listen on, e.g. 0.0.0.0:8080")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.deploy.publish import parse_address, serve

    server = serve(args.package, parse_address(args.http))
    host, port = server.server_address[:2]
    print(f"serving {args.package} at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
