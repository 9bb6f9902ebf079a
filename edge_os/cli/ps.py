"""``edge-os ps``: what a running ``edge-os serve`` is doing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_os.config import settings


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ps",
        help="show loaded models, memory, temperatures, governor state and queue of a running service",
        description="Ask a running `edge-os serve` (through its Unix socket) what it is doing: loaded models, "
        "memory, temperatures, governor state and queue.",
    )
    p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    p.add_argument("--socket", type=Path, help="the service's socket (default: EDGE_OS_SOCKET)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_os.scheduler.report import format_status
    from edge_os.scheduler.status_socket import query

    status = query(args.socket or settings().socket)
    print(json.dumps(status, indent=1) if args.json else format_status(status))
    return 0
