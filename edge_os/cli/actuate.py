"""`edge-os actuate PORT NAME VALUE`: set an actuator and report the device's acknowledgement."""

from __future__ import annotations

import argparse
import json
import time

from edge_os.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "actuate",
        help="set an actuator of a microcontroller and wait for its acknowledgement",
        description="Send COMMAND NAME=VALUE to the device on PORT (a device or pyserial URL). "
        "The value is checked against what the device announced before it is sent.",
    )
    p.add_argument("port", metavar="PORT", help="serial port or URL, e.g. /dev/ttyUSB0")
    p.add_argument("name", metavar="NAME", help="actuator name, as `edge-os sensors` lists it")
    p.add_argument("value", metavar="VALUE", help="integer value")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from firmware_bridge import Device

    try:
        value = int(args.value, 0)
    except ValueError:
        raise InputError(f"VALUE must be an integer, got {args.value!r}") from None
    with Device.open(args.port) as device:
        retries_before = device.stats.retries
        start = time.monotonic()
        device.command(args.name, value)
        elapsed_ms = (time.monotonic() - start) * 1000
        retries = device.stats.retries - retries_before
        name = device.name
    if args.json:
        report = {
            "port": args.port,
            "actuator": args.name,
            "value": value,
            "ack": True,
            "retries": retries,
            "round_trip_ms": round(elapsed_ms, 3),
        }
        print(json.dumps(report))
    else:
        print(f"{args.name} = {value}: acknowledged by {name} ({elapsed_ms:.1f} ms, {retries} retransmissions)")
    return 0
