"""edge-os flash PACKAGE DEVICE"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "flash", help="install a signed package on a device, atomically, with rollback",
        description="Check the package against the device (signature, target, version, memory, disk), send "
                    "only the files it lacks (resuming an interrupted transfer), then stage, switch, health-check "
                    "and commit or roll back on the device (docs/flash.md).")
    p.add_argument("package", type=Path, help="signed package directory")
    p.add_argument("device", help="file:///ROOT (a directory or mounted SD card holding a device store), "
                                  "ssh://user@host[:port]/ROOT, adb://SERIAL/ROOT or mqtt://broker[:port]/DEVICE_ID "
                                  "(with --url)")
    p.add_argument("--url", default=None, help="for mqtt://: where the device downloads the package "
                                                "(e.g. http://host:8080 from `edge-os publish`)")
    p.add_argument("--wait", type=float, default=3600.0, metavar="S",
                   help="for mqtt://: seconds to wait for the job's result (default 3600)")
    p.add_argument("--allow-downgrade", action="store_true", help="install even if older than what the device runs")
    p.add_argument("--json", action="store_true", help="print one JSON line per step and the result")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--remote-command", default="edge-os", metavar="CMD",
                   help="edge-os on the device, for ssh:// and adb:// (default: edge-os on its PATH)")
    p.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="passed to ssh as -o OPT (repeatable), e.g. IdentityFile=~/.ssh/board")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.deploy.flash import FlashOptions, flash
    from edge_os.deploy.links import open_link
    from edge_os.errors import DeployError

    def events(phase: str, details: dict) -> None:
        if args.json:
            print(json.dumps({"event": phase, **details}), flush=True)
        else:
            print(f"{phase}: " + ", ".join(f"{k} {v}" for k, v in details.items()), file=sys.stderr, flush=True)

    if args.device.startswith(("mqtt://", "mqtts://")):
        return run_ota(args, events)
    link = open_link(args.device, args.remote_command, tuple(args.ssh_option))
    try:
        result = flash(args.package, link, FlashOptions(args.allow_downgrade, progress=not (args.json or
                                                                                             args.no_progress)),
                       events)
    finally:
        link.close()
    if args.json:
        print(json.dumps({"event": "result", **result}), flush=True)
    if result["result"] not in ("installed", "unchanged"):
        raise DeployError(f"{result['name']} version {result['version']} was not kept: {result['reason']}; "
                          f"the device still runs version {result.get('previous_version')}")
    if not args.json:
        print(f"{result['name']} version {result['version']} {result['result']} on {args.device} "
              f"(sent {result['sent_bytes']} of {result['package_bytes']} bytes)")
    return 0


def run_ota(args, events) -> int:
    from urllib.parse import urlsplit

    from edge_os.config import settings
    from edge_os.deploy.ota import send_job
    from edge_os.errors import DeployError, InputError
    from edge_os.mqtt.config import BrokerConfig

    parts = urlsplit(args.device)
    device_id = parts.path.strip("/")
    if not device_id or "/" in device_id or not args.url:
        raise InputError(f"{args.device}: write mqtt://broker[:port]/DEVICE_ID and pass --url where the device "
                         "downloads the package (`edge-os publish PACKAGE --http ADDR` serves it)")
    broker = BrokerConfig.from_url(f"{parts.scheme}://{parts.netloc}", password=settings().mqtt_password)
    status = send_job(broker, device_id, args.url, args.wait, lambda s: events(s["state"], {
        k: v for k, v in s.items() if k not in ("state", "at")}))
    if args.json:
        print(json.dumps({"event": "result", **status}), flush=True)
    if status["state"] != "succeeded":
        raise DeployError(f"device {device_id}: job {status['state']}: {status.get('reason', '?')}")
    if not args.json:
        print(f"{status.get('name')} version {status.get('version')} installed on {device_id} over the air "
              f"(downloaded {status.get('downloaded')} bytes)")
    return 0
