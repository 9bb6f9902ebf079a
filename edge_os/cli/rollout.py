"""edge-os rollout PACKAGE --mqtt URL --devices ID,ID --url URL"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("rollout", help="install a package on a fleet over MQTT, in waves",
                              description="Send OTA jobs in waves, wait for each wave's results, stop and roll "
                                          "the wave back when failures pass --max-failures; print a table.")
    p.add_argument("package", type=Path, help="signed package directory (served at --url)")
    p.add_argument("--mqtt", required=True, metavar="URL", help="broker, e.g. mqtt://broker:1883")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--devices", metavar="ID,ID,...", help="device ids, in rollout order")
    who.add_argument("--all", action="store_true",
                     help="every device online on the broker that takes OTA jobs (found by its retained "
                          "edge-os/ID/ota/device message), in order of id")
    p.add_argument("--url", required=True, help="where devices download the package (`edge-os publish`)")
    p.add_argument("--waves", default="1,10,50%", help="devices reached after each wave (default 1,10,50%%)")
    p.add_argument("--max-failures", type=int, default=0, metavar="N", help="failures allowed in all (default 0)")
    p.add_argument("--wait", type=float, default=3600.0, metavar="S", help="seconds to wait for each wave")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import asdict

    from edge_os.config import settings
    from edge_os.deploy.rollout import discover, rollout, table, wave_sizes
    from edge_os.deploy.signing import verify_package
    from edge_os.errors import DeployError, PackageError
    from edge_os.mqtt.config import BrokerConfig

    problems = [p for p in verify_package(args.package, []) if "signed by key" not in p]
    if problems:
        raise PackageError(f"{args.package}: {problems[0]}")
    broker = BrokerConfig.from_url(args.mqtt, password=settings().mqtt_password)
    if args.all:
        devices, offline = discover(broker)
        if offline:
            print(f"skipping {len(offline)} offline devices: {', '.join(offline)}", file=sys.stderr, flush=True)
        if not devices:
            raise DeployError(f"no device online on {args.mqtt} takes OTA jobs (none announced itself on "
                              "edge-os/+/ota/device); start `edge-os serve --root ROOT --mqtt URL` or `edge-os device "
                              "ota` on the devices, or name them with --devices")
        print(f"found {len(devices)} devices: {', '.join(devices)}", file=sys.stderr, flush=True)
    else:
        devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    waves = wave_sizes(args.waves, len(devices))
    rows = rollout(broker, devices, args.url.rstrip("/"), waves, args.max_failures, args.wait,
                   lambda n, wave_rows: print(f"wave {n}: " + ", ".join(f"{r.device} {r.state}" for r in wave_rows),
                                              file=sys.stderr, flush=True))
    print(json.dumps([asdict(r) for r in rows]) if args.json else table(rows))
    if any("rollout stopped" in r.reason for r in rows):
        raise DeployError(f"rollout stopped: failures passed --max-failures {args.max_failures}; the last wave "
                          "was rolled back, see the table")
    failed = [r.device for r in rows if r.state != "succeeded"]
    if failed:
        raise DeployError(f"{len(failed)} of {len(rows)} devices were not updated ({', '.join(failed)}); see the table")
    return 0
