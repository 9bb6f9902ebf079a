"""``edge-os serve``: run the on-device scheduler (front doors attach to it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge_os.cli.common import positive_int
from edge_os.cli.mqtt_options import add_bridge_options

if TYPE_CHECKING:
    from edge_os.scheduler.service import ServeOptions


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the on-device scheduler under memory and thermal budgets",
        description="Serve model packages under the device's memory, thermal and power budgets. "
        "`edge-os ps` asks it what it is doing.",
    )
    p.add_argument("--models", nargs="+", default=[], metavar="MODEL",
                   help="stored models' NAME[:TAG]s or package directories "
                        "(default: the bundled SmolLM2-135M, packed on first use)")
    p.add_argument("--memory-budget", metavar="SIZE",
                   help="memory edge-os may use, e.g. 2G or 512M (default: the target's share of MemTotal)")
    p.add_argument("--target", help="target descriptor for budgets and thermal zones (default: EDGE_OS_TARGET)")
    p.add_argument("--thermal-root", type=Path, default=Path("/sys/class/thermal"), metavar="DIR",
                   help="where thermal_zone*/ and cooling_device*/ live (a simulated tree in tests)")
    p.add_argument("--power-root", type=Path, default=Path("/sys/class/power_supply"), metavar="DIR",
                   help="where the power supplies live")
    p.add_argument("--meminfo", type=Path, default=Path("/proc/meminfo"), metavar="FILE",
                   help="where MemTotal and MemAvailable are read")
    p.add_argument("--keep-alive", metavar="SECONDS", help="how long an idle model stays loaded (inf: forever)")
    p.add_argument("--pin", nargs="+", default=[], metavar="NAME", help="load these models now and never unload them")
    p.add_argument("--preload", nargs="+", default=[], metavar="NAME", help="load these models now")
    p.add_argument("--threads", type=positive_int, help="engine threads at full speed (default: EDGE_OS_THREADS)")
    p.add_argument("--context", type=positive_int, metavar="TOKENS", help="context window each model is served with")
    p.add_argument("--socket", type=Path, help="Unix socket for `edge-os ps` (default: EDGE_OS_SOCKET)")
    add_bridge_options(p)
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    from edge_os.scheduler.service import ServeOptions
    from edge_os.store.resolve import resolve_model

    return ServeOptions(
        models=tuple(resolve_model(m) for m in args.models),
        target=args.target,
        memory_budget=args.memory_budget,
        keep_alive=args.keep_alive,
        pin=tuple(args.pin),
        preload=tuple(args.preload),
        threads=args.threads,
        context=args.context,
        socket=args.socket,
        thermal_root=args.thermal_root,
        power_root=args.power_root,
        meminfo=args.meminfo,
    )


def run(args: argparse.Namespace) -> int:
    from edge_os.cli.mqtt_options import bridge_config_from_args
    from edge_os.scheduler.service import serve

    doors = []
    if args.mqtt:
        from edge_os.mqtt.front_door import MqttFrontDoor

        doors.append(MqttFrontDoor(bridge_config_from_args(args)))
    serve(options_from_args(args), front_doors=doors)
    return 0
