"""Typed configuration of the scheduler, built from a target descriptor, settings and flags."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge_os.config import Settings, usable_cores
from edge_os.errors import InputError
from edge_os.scheduler.governor import GovernorConfig, PowerConfig
from edge_os.scheduler.sizes import parse_size
from edge_os.targets import Target


@dataclass(frozen=True)
class SchedulerConfig:
    budget_bytes: int | None = None  # None: memory_fraction of MemTotal, read when the scheduler starts
    memory_fraction: float = 0.8
    pooled_memory: bool = True  # models draw from host RAM (CPU engines, unified-memory boards)
    reserve_fraction: float = 0.05  # of MemTotal kept free for the rest of the device (pooled only)
    max_queue: int = 64  # waiting requests; more are refused with queue_full
    threads: int = 1  # engine threads at full speed; the governor lowers it for new loads
    share_cpu: bool = False  # engines run on the cores other programs leave (edge_os.scheduler.cpu_share)
    template_allowance_tokens: int = 256  # chat-template tokens reserved beyond the prompt's bytes
    probe_interval_s: float = 0.5  # how often the probes are read
    governor: GovernorConfig = field(default_factory=GovernorConfig)
    power: PowerConfig = field(default_factory=PowerConfig)

    def __post_init__(self) -> None:
        if not 0 < self.memory_fraction <= 1:
            raise InputError(f"memory_fraction must be in (0, 1] (got {self.memory_fraction})")
        if not 0 <= self.reserve_fraction < 1:
            raise InputError(f"reserve_fraction must be in [0, 1) (got {self.reserve_fraction})")
        if self.max_queue < 0:
            raise InputError(f"max_queue must be >= 0 (got {self.max_queue})")
        if self.threads < 1:
            raise InputError(f"threads must be >= 1 (got {self.threads})")


def parse_keep_alive(text: str) -> float:
    """Seconds from ``300``, ``2.5`` or ``inf``; raises ``InputError`` for anything else."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise InputError(f"keep-alive {text!r} is not a number of seconds >= 0 (or inf)")
    return value


def parse_max_queue(text: str) -> int:
    if not text.strip().isdigit():
        raise InputError(f"max queue {text!r} is not a whole number >= 0")
    return int(text)


def config_for_target(
    target: Target, settings: Settings, budget: str | None = None, threads: int | None = None
) -> SchedulerConfig:
    """The scheduler configuration for ``target``; ``budget`` (e.g. ``2G``) overrides the
    target's memory fraction, and so does ``EDGE_OS_MEMORY_BUDGET``."""
    budget_text = budget or settings.memory_budget
    # Neither --threads nor EDGE_OS_THREADS: every core, less those other programs keep busy, while serving.
    # (on one core there is nothing to share: no probe)
    share_cpu = threads is None and not settings.threads_given and usable_cores() > 1
    return SchedulerConfig(
        budget_bytes=parse_size(budget_text, "memory budget") if budget_text else None,
        memory_fraction=target.budgets.memory_fraction,
        pooled_memory=target.unified_memory or not target.is_gpu,
        max_queue=parse_max_queue(settings.max_queue),
        threads=threads or (usable_cores() if share_cpu else settings.threads),
        share_cpu=share_cpu,
        governor=GovernorConfig(
            setpoint_c=target.budgets.thermal_setpoint_c, hysteresis_c=target.budgets.thermal_hysteresis_c
        ),
    )
