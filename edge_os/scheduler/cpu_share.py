"""Fewer engine threads while other programs want the CPU, as many as configured once they stop.

A TVM thread pool waits at the end of every parallel kernel for all its workers; when the OS has
one of them descheduled for a neighbour, every kernel of the step waits a scheduling slice for it.
On 2 cores with two busy neighbours a SmolLM2 decode step took 993 ms on 2 threads against 23 ms
on 1 (docs/performance.md). ``default_threads`` already leaves the cores that are busy at start;
this keeps doing it while the service runs: the runnable tasks of other programs are averaged over
the last few probe readings, and the engines get the cores they leave, at least one thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge_os.scheduler.governor import Throttle
from edge_os.scheduler.probes.cpu import CpuReading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuShareConfig:
    weight: float = 0.3  # of each new reading in the moving average (readings come every probe interval)
    release_margin: float = 0.3  # cores that must be free beyond a thread before it is taken back


class CpuShare:
    """Turns readings of other programs' runnable tasks into a thread fraction for the engines."""

    def __init__(self, threads: int, config: CpuShareConfig = CpuShareConfig()):
        self.threads = threads  # configured: the most the engines run on
        self.config = config
        self.allowed = threads
        self.others: float | None = None  # moving average of other programs' runnable tasks
        self.reason = "no reading yet"

    def update(self, reading: CpuReading) -> Throttle:
        seen = reading.others_runnable
        self.others = seen if self.others is None else self.others + self.config.weight * (seen - self.others)
        free = reading.cores - self.others
        allowed = max(1, min(self.threads, int(free + 0.5)))  # the nearest whole core
        if allowed > self.allowed and free < allowed - 0.5 + self.config.release_margin:
            allowed = self.allowed  # not clearly free yet: no thread back and forth at the edge
        if allowed != self.allowed:
            self.reason = (f"other programs keep {self.others:.1f} of {reading.cores} cores busy: "
                           f"engines on {allowed} of {self.threads} threads")
            (log.warning if allowed < self.allowed else log.info)("%s", self.reason)
            self.allowed = allowed
        return Throttle(thread_fraction=self.allowed / self.threads)
