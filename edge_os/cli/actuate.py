"""`edge-os actuate PORT NAME VALUE`: set an actuator and report the device's acknowledgement."""

from __future__ import annotations

import argparse
import json
import time

from edge_os.errors import InputError

# The full capabilities (~180 bytes) are only fetched for a device not seen before; at a bit
# error rate of 1e-3 about one answer in eight arrives intact (100 tries: all fail 1 time in 500,000).
FULL_HELLO_RETRIES = 100


def one_shot_link():
    """The link settings of a one-shot command. Nothing is gained by giving up early, and every
    retransmission carries the same sequence number, so the device still runs the command once;
    backoff spaces the retransmissions out for a device that is busy or restarting."""
    from firmware_bridge import LinkConfig

    return LinkConfig(timeout=0.1, retries=12, backoff=1.25, max_timeout=0.5)


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
    from edge_os.cli.serial_errors import device_errors
    from edge_os.config import settings
    from edge_os.safe_text import terminal_safe
    from firmware_bridge import Device
    from firmware_bridge.capability_cache import CapabilityCache

    try:
        value = int(args.value, 0)
    except ValueError:
        raise InputError(f"VALUE must be an integer, got {args.value!r}") from None
    cache = CapabilityCache(settings().home / "firmware" / "capabilities")
    link = one_shot_link()
    with device_errors(), Device.open(args.port, link, hello_retries=FULL_HELLO_RETRIES, cache=cache) as device:
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
        print(
            f"{terminal_safe(args.name)} = {value}: acknowledged by {terminal_safe(name)}"
            f" ({elapsed_ms:.1f} ms, {retries} retransmissions)"
        )
    return 0
