"""`edge-os sensors [PORT]`: devices on serial ports, their capabilities and a live reading each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from edge_os.safe_text import json_dumps, terminal_safe

if TYPE_CHECKING:
    from firmware_bridge.discovery import Survey


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sensors",
        help="list microcontrollers on serial ports, their sensors, actuators and live readings",
        description="Ask PORT (or every serial port the OS lists) for HELLO and read each sensor once. "
        "PORT is a device or a pyserial URL: /dev/ttyUSB0, socket://host:port, rfc2217://host:port.",
    )
    p.add_argument("port", nargs="?", metavar="PORT", help="serial port or URL (default: try every serial port)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def _text(report: Survey) -> str:
    """The report for a terminal; every string the device sent goes through ``terminal_safe``."""
    from firmware_bridge import DeviceError
    from firmware_bridge.discovery import NOT_FINITE, OUT_OF_RANGE, reading_flags

    flag_text = {NOT_FINITE: "not a finite number", OUT_OF_RANGE: "outside the declared range"}
    caps = report.capabilities
    safe = terminal_safe
    lines = [f"{safe(caps.firmware)} {safe(caps.version)} on {safe(report.url)}", "  sensors:"]
    names = [safe(s.name) for s in caps.sensors] + [safe(a.name) for a in caps.actuators]
    width = max(map(len, names), default=0)
    for s in caps.sensors:
        reading = report.readings[s.name]
        if isinstance(reading, DeviceError):
            now = f"error: {safe(str(reading))}"
        else:
            now = f"{reading.value:g} {safe(s.unit)}".rstrip()
            now += "".join(f"  [{flag_text[flag]}]" for flag in reading_flags(s, reading.value))
        lines.append(f"    {safe(s.name):<{width}}  {now}  (range {s.min:g} to {s.max:g})")
    lines.append("  actuators:")
    for a in caps.actuators:
        unit = f" ({safe(a.unit)})" if a.unit else ""
        lines.append(f"    {safe(a.name):<{width}}  {a.describe_allowed()}{unit}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from edge_os.cli.serial_errors import device_errors

    with device_errors():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from firmware_bridge import Device, DeviceError, discover, serial_ports
    from firmware_bridge.discovery import survey

    if args.port:
        devices = [Device.open(args.port)]
    else:
        ports = serial_ports()
        devices = discover(ports)
        if not devices:
            raise DeviceError(f"no device answered HELLO on any serial port ({len(ports)} found); pass PORT")
    try:
        reports = [survey(d) for d in devices]
    finally:
        for d in devices:
            d.close()
    if args.json:
        print(json_dumps([r.to_json() for r in reports], indent=2))
    else:
        print("\n".join(_text(r) for r in reports))
    return 0
