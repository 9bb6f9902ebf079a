"""``edge-os serve``: a scheduler for a device, with front doors attached to it.

A front door is anything with ``name``, ``start(scheduler)`` and ``stop()``: the status socket
for ``edge-os ps`` is one; the MQTT bridge attaches the same way (``Service.attach(door)`` before
``start()``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from edge_os.config import settings
from edge_os.errors import InputError
from edge_os.scheduler.api import SchedulerAPI
from edge_os.scheduler.catalog import Catalog, ModelEntry, package_entry
from edge_os.scheduler.config import config_for_target, parse_keep_alive
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.periodic import PeriodicSpec
from edge_os.scheduler.probes import CpuProbe, MemoryProbe, PowerProbe, ThermalProbe
from edge_os.scheduler.sizes import format_size
from edge_os.scheduler.status_socket import StatusServer
from edge_os.signals import wait_for_signal
from edge_os.targets import load_target

log = logging.getLogger(__name__)


class FrontDoor(Protocol):
    name: str

    def start(self, scheduler: SchedulerAPI) -> None:
        """Begin taking requests and submitting them to ``scheduler``."""

    def stop(self) -> None:
        """Stop taking requests and release what was opened in ``start``."""


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``edge-os serve`` needs; ``None`` means the target's or environment's default."""

    models: tuple[Path, ...] = ()  # none: the bundled default model
    target: str | None = None
    memory_budget: str | None = None
    keep_alive: str | None = None  # seconds or "inf"
    pin: tuple[str, ...] = ()  # model names loaded at start and never unloaded
    preload: tuple[str, ...] = ()  # model names loaded at start
    threads: int | None = None
    context: int | None = None
    socket: Path | None = None
    thermal_root: Path = Path("/sys/class/thermal")
    power_root: Path = Path("/sys/class/power_supply")
    meminfo: Path = Path("/proc/meminfo")
    periodic: tuple[str, ...] = ()  # NAME:MS[:FRAMES.npy]: a TFLite model run every MS milliseconds
    root: Path | None = None  # a device store: ``models`` are its packages, and its switches are followed


def build_scheduler(options: ServeOptions) -> Scheduler:
    """The scheduler for these options: target budgets, the packages, the probes."""
    env = settings()
    target = load_target(options.target or env.target)
    keep_alive = parse_keep_alive(options.keep_alive or env.keep_alive)
    config = config_for_target(target, env, budget=options.memory_budget, threads=options.threads)
    paths = options.models
    if not paths and options.root is None:  # a device store may start empty and take an install later
        from edge_os import default_model

        _check_named(options, (default_model.NAME,))  # before minutes of packing
        paths = (default_model.default_package(separate_process=True),)
    entries = {}
    for path in paths:
        entry = model_entry(options, path, keep_alive)
        if entry.name in entries:
            raise InputError(f"two packages are named {entry.name!r}; re-pack one with --name")
        entries[entry.name] = entry
    if options.root is None:  # a store's pinned names may arrive later, by an install
        _check_named(options, tuple(entries))
    smallest = min(entries.values(), key=lambda e: e.info.resident_bytes, default=None)
    if smallest and config.budget_bytes is not None and smallest.info.resident_bytes > config.budget_bytes:
        raise InputError(
            f"the memory budget {format_size(config.budget_bytes)} cannot hold even {smallest.name} "
            f"({format_size(smallest.info.resident_bytes)}); raise --memory-budget or EDGE_OS_MEMORY_BUDGET"
        )
    periodic = tuple(periodic_spec(text, entries) for text in options.periodic)
    for spec in periodic:  # a periodic model runs for as long as the service does
        entries[spec.model] = replace(entries[spec.model], pinned=True, keep_alive_s=math.inf)
    return Scheduler(
        Catalog(list(entries.values())),
        config,
        MemoryProbe(options.meminfo),
        ThermalProbe(options.thermal_root, target.thermal_zones),
        PowerProbe(options.power_root),
        periodic=periodic,
        cpu_probe=CpuProbe() if config.share_cpu else None,
    )


def model_entry(options: ServeOptions, path: Path, keep_alive: float | None = None) -> ModelEntry:
    """The catalog entry of the package at ``path`` with the options' context, keep-alive, pin and preload."""
    if keep_alive is None:
        keep_alive = parse_keep_alive(options.keep_alive or settings().keep_alive)
    entry = package_entry(path, context_tokens=options.context, keep_alive_s=keep_alive)
    if entry.name in options.preload:
        entry = replace(entry, preload=True)
    if entry.name in options.pin:
        entry = replace(entry, pinned=True, keep_alive_s=math.inf)
    return entry


def periodic_spec(text: str, entries: dict[str, ModelEntry]) -> PeriodicSpec:
    """``NAME:MS[:FRAMES.npy]`` as a periodic model: run NAME every MS milliseconds on the frames of
    FRAMES.npy in turn (its first axis; default: zeros of the model's input)."""
    from edge_os.package.tflite import read_manifest
    from edge_os.scheduler.periodic import frame_source

    name, _, rest = text.partition(":")
    period, _, frames = rest.partition(":")
    try:
        period_ms = float(period)
    except ValueError:
        period_ms = math.nan
    if not (math.isfinite(period_ms) and period_ms > 0):
        raise InputError(f"--periodic {text!r}: give NAME:MS[:FRAMES.npy] with MS > 0 milliseconds")
    entry = entries.get(name)
    if entry is None or entry.info.kind != "tflite":
        have = ", ".join(n for n, e in entries.items() if e.info.kind == "tflite") or "none"
        raise InputError(f"--periodic {text!r}: no TFLite model named {name!r} is served (TFLite models: {have})")
    manifest = read_manifest(Path(entry.info.package))
    return PeriodicSpec(name, period_ms / 1000, frame_source(manifest.inputs, Path(frames) if frames else None))


def _check_named(options: ServeOptions, names: tuple[str, ...]) -> None:
    for name in (*options.pin, *options.preload):
        if name not in names:
            raise InputError(f"cannot pin or preload {name!r}: no package of that name (have: {', '.join(names)})")


class Service:
    """A running scheduler and its front doors."""

    def __init__(self, scheduler: Scheduler, socket_path: Path):
        self.scheduler = scheduler
        self.front_doors: list[FrontDoor] = [StatusServer(socket_path)]

    def attach(self, door: FrontDoor) -> None:
        """Add a front door; it starts with the service."""
        self.front_doors.append(door)

    def start(self) -> Service:
        self.scheduler.start()
        started = []
        try:
            for door in self.front_doors:
                door.start(self.scheduler)
                started.append(door)
        except BaseException:
            for door in reversed(started):
                door.stop()
            self.scheduler.close()
            raise
        status = self.scheduler.status()
        log.info(
            "serving %s; memory budget %s; thermal setpoint %.1f C",
            ", ".join(m["name"] for m in status["models"]) or "no models",
            format_size(status["memory"]["budget_bytes"]),
            status["governor"]["setpoint_c"],
        )
        return self

    def stop(self) -> None:
        for door in reversed(self.front_doors):
            door.stop()
        self.scheduler.close()

    def run_until_signalled(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly."""
        self.start()
        try:
            wait_for_signal()
            log.info("stopping")
        finally:
            self.stop()

def serve(options: ServeOptions, front_doors: Iterable[FrontDoor] = ()) -> None:
    """Build the service for ``options``, attach ``front_doors``, run until a signal stops it."""
    watcher = None
    if options.root is not None:
        from edge_os.deploy.serving import StoreWatcher

        keep_alive = parse_keep_alive(options.keep_alive or settings().keep_alive)
        watcher = StoreWatcher(options.root, lambda path: model_entry(options, path, keep_alive))
        options = replace(options, models=watcher.packages())
    service = Service(build_scheduler(options), options.socket or settings().socket)
    if watcher is not None:
        service.attach(watcher)
    for door in front_doors:
        service.attach(door)
    service.run_until_signalled()
