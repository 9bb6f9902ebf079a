"""Periodic models: a TFLite model run every ``period_s`` with a deadline, ahead of LLM decode steps.

A release happens every period; its run must finish by ``release + deadline_s``. The scheduler
loop runs a due release before anything else in a tick, and before each LLM step it asks
``llm_may_step``: a step that could push a coming release past its deadline is not started
(the LLM yields between tokens until the release has run). The bookkeeping here is pure: the
loop passes in the clock's readings.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

RECENT_RUNS = 1000  # runs the recent latency figures cover
EWMA = 0.2  # weight of the newest duration in the running estimates
PERIODIC_NICE = -10  # the periodic thread's niceness where the system lets us lower it
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicSpec:
    """Run ``model`` every ``period_s`` on ``source()``'s input and hand the outputs to ``sink``.

    ``deadline_s`` (default: the period) is how long after its release a run may finish.
    """

    model: str
    period_s: float
    source: Callable[[], object]
    sink: Callable[[dict], None] | None = None
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"period of {self.model} must be > 0 seconds")
        if self.deadline_s is not None and not (math.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ValueError(f"deadline of {self.model} must be > 0 seconds")

    @property
    def deadline(self) -> float:
        return self.period_s if self.deadline_s is None else self.deadline_s


@dataclass
class PeriodicTask:
    """One periodic model's schedule and record."""

    spec: PeriodicSpec
    next_release: float
    runs: int = 0
    misses: int = 0  # runs that finished after their deadline, plus releases skipped for being too late
    skipped: int = 0  # releases never run: the loop came back more than a period after them
    run_estimate_s: float = 0.0  # running estimate of one run's duration
    worst_latency_s: float = 0.0  # release to finish
    errors: int = 0
    last_error: str | None = None
    last_output: dict = field(default_factory=dict)
    recent_latency_s: deque = field(default_factory=lambda: deque(maxlen=RECENT_RUNS))
    # ``record`` runs on the periodic thread while the loop reads ``status``: the deque needs the lock.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def due(self, now: float) -> bool:
        return now >= self.next_release

    def take_release(self, now: float) -> float:
        """The release to run now; releases more than a period late are skipped and counted missed."""
        period = self.spec.period_s
        late = int((now - self.next_release) // period)
        if late > 0:
            self.skipped += late
            self.misses += late
            self.next_release += late * period
        release = self.next_release
        self.next_release += period
        return release

    def record(self, release: float, started: float, finished: float) -> bool:
        """Book a run of ``release``; True when it met its deadline."""
        self.runs += 1
        duration = finished - started
        self.run_estimate_s = duration if self.runs == 1 else (1 - EWMA) * self.run_estimate_s + EWMA * duration
        self.worst_latency_s = max(self.worst_latency_s, finished - release)
        with self._lock:
            self.recent_latency_s.append(finished - release)
        met = finished <= release + self.spec.deadline
        if not met:
            self.misses += 1
        return met

    @property
    def latest_start(self) -> float:
        """The latest time the next release may start and still meet its deadline."""
        return self.next_release + self.spec.deadline - self.run_estimate_s

    def status(self) -> dict:
        releases = self.runs + self.skipped
        with self._lock:
            recent = sorted(self.recent_latency_s)
        return {
            "model": self.spec.model, "period_ms": self.spec.period_s * 1000, "deadline_ms": self.spec.deadline * 1000,
            "runs": self.runs, "misses": self.misses, "skipped": self.skipped,
            "miss_pct": round(100 * self.misses / releases, 3) if releases else 0.0,
            "worst_latency_ms": round(self.worst_latency_s * 1000, 3),
            "recent_p99_latency_ms": round(1000 * recent[int(0.99 * (len(recent) - 1))], 3) if recent else 0.0,
            "recent_worst_latency_ms": round(1000 * recent[-1], 3) if recent else 0.0,
            "run_ms": round(self.run_estimate_s * 1000, 3), "errors": self.errors, "last_error": self.last_error,
        }


def llm_may_step(now: float, step_estimate_s: float, tasks: Iterable[PeriodicTask]) -> bool:
    """Whether an LLM step expected to take ``step_estimate_s`` may start at ``now`` without making
    any periodic release miss its deadline (a due release is run first, never waited behind a step).

    A step too long to fit between two releases ever (longer than period + deadline - two runs)
    starts right after a release instead of starving: those misses show in the record."""
    for t in tasks:
        if t.due(now):
            return False
        window = t.spec.period_s + t.spec.deadline - 2 * t.run_estimate_s
        if now + step_estimate_s > t.latest_start and step_estimate_s <= window:
            return False
    return True


def next_release(tasks: Iterable[PeriodicTask]) -> float:
    return min((t.next_release for t in tasks), default=math.inf)


def update_estimate(previous: float | None, duration: float) -> float:
    """A running estimate of a step's duration (the first measurement stands alone)."""
    return duration if previous is None else (1 - EWMA) * previous + EWMA * duration


def frame_source(inputs, frames_path: Path | None) -> Callable[[], object]:
    """Inputs for a periodic model: the frames of a .npy file in turn (its first axis indexes them;
    each frame has the model's single input shape), or zeros of each input's shape and dtype."""
    import numpy as np

    from edge_os.errors import InputError

    if frames_path is None:
        zeros = [np.zeros(t.shape, dtype=t.dtype) for t in inputs]
        return lambda: zeros
    if len(inputs) != 1:
        raise InputError(f"{frames_path}: frames feed models with one input; this one has {len(inputs)}")
    try:
        frames = np.load(frames_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{frames_path} is not a readable .npy array ({exc}); write one with numpy.save") from None
    spec = inputs[0]
    if not isinstance(frames, np.ndarray) or frames.shape[1:] != spec.shape or frames.dtype.name != spec.dtype \
            or len(frames) == 0:
        raise InputError(f"{frames_path} must hold frames of shape [N, {', '.join(map(str, spec.shape))}] and "
                         f"dtype {spec.dtype}, not {list(getattr(frames, 'shape', []))} {getattr(frames, 'dtype', '')}")
    counter = iter(range(1 << 62))
    return lambda: frames[next(counter) % len(frames)]


def raise_thread_priority() -> None:
    """Give the calling thread (Linux: its own nice value) precedence over the LLM's threads, where
    the system allows it; otherwise it keeps the process's priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PERIODIC_NICE)
    except (OSError, AttributeError) as exc:
        log.debug("periodic thread keeps its priority: %s", exc)
