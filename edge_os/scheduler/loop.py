"""The scheduler: one loop owns the table of loaded models and the request queue.

Front doors call ``submit`` and ``Handle.cancel`` from any thread; both only post a command to
the loop's inbox. Everything else (admission, loading, eviction, engine steps, deadlines,
keep-alive, throttling) happens in ``tick``, on one thread, so no state is shared. Decisions come
from the pure functions in ``policy`` and ``governor``; side effects (loading engines, probes,
the clock) are injected, so tests drive ``tick`` by hand with a fake clock and fake sysfs trees.

This module holds the loop itself (front door, ``tick``, start and close); the rest of the class
lives in mixins with one job each: ``_admission`` (queue and start), ``_models`` (load, unload,
replace), ``_stepping`` (engine steps), ``_endings`` (refusals and early finishes),
``_periodic_run`` (periodic models' releases) and ``_publishing`` (books and status).
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from edge_os.errors import SchedulerError
from edge_os.runtime.request import FinishReason, GenerationRequest, InferenceRequest
from edge_os.scheduler._admission import Admission
from edge_os.scheduler._endings import Endings
from edge_os.scheduler._models import PARTITION_MIN_THREADS, ModelTable
from edge_os.scheduler._periodic_run import PeriodicRuns
from edge_os.scheduler._publishing import TOK_S_WINDOW_S, Publishing
from edge_os.scheduler._stepping import Stepping
from edge_os.scheduler._table import Job, LoadedModel
from edge_os.scheduler.catalog import Catalog, ModelEntry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.cpu_share import CpuShare
from edge_os.scheduler.governor import Governor, Throttle
from edge_os.scheduler.handle import Handle, wakeups_held
from edge_os.scheduler.periodic import PeriodicSpec, PeriodicTask
from edge_os.scheduler.policy import keep_alive_expired
from edge_os.scheduler.probes import CpuProbe, MemoryProbe, PowerProbe, PowerReading, ThermalProbe, ThermalReading
from edge_os.scheduler.sizes import format_size

log = logging.getLogger(__name__)

PERIODIC_SWITCH_INTERVAL_S = 0.0005
__all__ = ["PARTITION_MIN_THREADS", "PERIODIC_SWITCH_INTERVAL_S", "TOK_S_WINDOW_S", "Scheduler"]


class Scheduler(Admission, ModelTable, Stepping, Endings, PeriodicRuns, Publishing):
    """Serves ``GenerationRequest``s from several models under memory, thermal and power budgets.

    Implements ``edge_os.scheduler.api.SchedulerAPI``. Call ``start()`` to run the loop on its own
    thread (or drive ``tick()`` yourself), and ``close()`` to stop it and unload every model.
    """

    def __init__(
        self,
        catalog: Catalog,
        config: SchedulerConfig,
        memory_probe: MemoryProbe,
        thermal_probe: ThermalProbe | None = None,
        power_probe: PowerProbe | None = None,
        clock: Callable[[], float] = time.monotonic,
        periodic: tuple[PeriodicSpec, ...] = (),
        cpu_probe: CpuProbe | None = None,
    ):
        self.catalog = catalog
        self.config = config
        self._memory_probe = memory_probe
        self._thermal_probe = thermal_probe
        self._power_probe = power_probe
        self._cpu_probe = cpu_probe  # None: engines keep config.threads whatever else runs
        self._cpu_share = CpuShare(config.threads)
        self._clock = clock
        self._memory = memory_probe.read()
        self.budget = config.budget_bytes or int(config.memory_fraction * self._memory.total_bytes)
        self._governor = Governor(config.governor, config.power)
        self._throttle = Throttle()
        self._thermal = ThermalReading((), ())
        self._power = PowerReading(())
        self._queue: list[Job] = []
        self._models: dict[str, LoadedModel] = {}
        self._retiring: list[LoadedModel] = []  # replaced versions finishing the requests they run
        self._inbox: deque[tuple[str, object]] = deque()
        self._cond = threading.Condition()
        self._arrivals = itertools.count()
        self._last_arrival = -1
        self._next_probe = -math.inf
        self._resume_at = -math.inf
        self._tokens: deque[tuple[float, int]] = deque()  # (when, how many) in the tok/s window
        self._window_tokens = 0
        self._started_at = clock()
        self._preloaded = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._status: dict = {}
        self._periodic = [PeriodicTask(spec, self._started_at) for spec in periodic]
        self._yield_until = -math.inf  # LLM steps wait until then for a periodic release
        self._periodic_thread: threading.Thread | None = None  # None: tick runs due releases itself
        self._periodic_stop = threading.Event()
        self.yields = 0  # LLM steps put off for a periodic model (tests check the mechanism)
        for spec in periodic:
            entry = catalog.get(spec.model)
            if entry is None or entry.info.kind != "tflite" or spec.model not in catalog.names():
                raise SchedulerError(f"periodic model {spec.model!r} is not a TFLite model this scheduler serves "
                                     f"(it has {', '.join(catalog.names()) or 'none'})")
            if not entry.pinned:
                raise SchedulerError(f"periodic model {spec.model!r} must be pinned: it runs for as long as "
                                     "the scheduler does")
        self.loads = 0  # engines loaded so far (tests check there is no evict/reload loop)
        self.evictions = 0  # models unloaded to make room
        self.peak_accounted = 0  # the most ever accounted at once (never above the budget)
        pinned = sum(e.info.resident_bytes for e in catalog if e.pinned)
        if pinned > self._memory_state().ceiling:
            raise SchedulerError(
                f"pinned models need {format_size(pinned)} but the memory budget is "
                f"{format_size(self._memory_state().ceiling)}; unpin one or raise --memory-budget"
            )
        self._publish()

    def submit(self, request: GenerationRequest | InferenceRequest) -> Handle:
        """Queue a request (a generation, or an inference for a TFLite model); never blocks on it."""
        handle = Handle(request.request_id, self._post_cancel)
        self._post("submit", Job(request, handle, next(self._arrivals), self._clock()))
        return handle

    def set_model(self, entry: ModelEntry) -> None:
        """Serve ``entry`` under its name from now on: a model new to the catalog, or a new version
        of one (a device store's switch). Applied by the loop between steps: requests running on the
        old version finish on it (it is unloaded once they have); queued and new requests go to the
        new version, which loads through the normal admission path."""
        self._post("model", entry)

    def remove_model(self, name: str) -> None:
        """Stop serving ``name``: running requests finish, queued ones are refused."""
        self._post("model", name)

    def status(self) -> dict:
        """A JSON-able snapshot: models, memory, temperatures, governor, queue, recent tok/s."""
        with self._cond:
            return self._status

    def start(self) -> Scheduler:
        """Run the loop on a daemon thread, and periodic models on one of their own."""
        self._thread = threading.Thread(target=self._run, name="edge-os-scheduler", daemon=True)
        if self._periodic:
            self._periodic_thread = threading.Thread(target=self._periodic_loop, name="edge-os-periodic",
                                                     daemon=True)
            # A thread holding the GIL hands it over after this long when another asks: the periodic
            # thread waits at most about this long behind the loop's Python code (default 5 ms).
            sys.setswitchinterval(min(sys.getswitchinterval(), PERIODIC_SWITCH_INTERVAL_S))
        self._thread.start()
        if self._periodic_thread is not None:
            self._periodic_thread.start()
        return self

    def close(self) -> None:
        """Stop the loop, end every request (running: cancelled; queued: refused), unload all."""
        self._periodic_stop.set()
        if self._periodic_thread is not None:
            self._periodic_thread.join()
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        self._drain_inbox(self._clock())
        for job in list(self._queue):
            self._refuse(job, "shutting_down", "the scheduler is shutting down", fallback=True)
        for name in list(self._models):
            for job in list(self._models[name].jobs):
                self._finish(job, FinishReason.CANCELLED)
            self._unload(name, "scheduler closed")
        for loaded in list(self._retiring):
            for job in list(loaded.jobs):
                self._finish(job, FinishReason.CANCELLED)
        self._unload_retired()
        self._publish()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _post(self, kind: str, payload: object) -> None:
        with self._cond:
            self._inbox.append((kind, payload))
            self._cond.notify()

    def _post_cancel(self, request_id: str) -> None:
        self._post("cancel", request_id)

    def _run(self) -> None:
        while True:
            try:
                with wakeups_held():
                    wake = self.tick()
            except Exception:  # a bug must not kill the only thread that serves requests
                log.exception("scheduler tick failed")
                wake = self._clock() + self.config.probe_interval_s
            with self._cond:
                if self._closed:
                    return
                if not self._inbox:
                    timeout = None if wake is None else wake - self._clock()
                    if timeout is None or timeout > 0:
                        self._cond.wait(timeout)

    def tick(self) -> float | None:
        """One pass of the loop. Returns the clock time at which it next has work to do."""
        now = self._clock()
        if not self._preloaded:
            self._preload(now)
        self._drain_inbox(now)
        if self._periodic_thread is None:
            self._run_periodic()
        if now >= self._next_probe:
            self._sample(now)
        self._expire_deadlines(now)
        self._unload_retired()
        for name in keep_alive_expired(self._views(), now):
            self._unload(name, "keep-alive ran out")
        if self._throttle.stop:
            for job in list(self._queue):
                self._refuse(job, "too_hot", self._governor.reason, fallback=True)
        else:
            self._admit()
            self._enforce_queue_bound()
            if self._clock() >= self._resume_at:
                self._step_all()
        self._unload_retired()
        self._publish()
        return self._next_wake()

    def _drain_inbox(self, now: float) -> None:
        while True:
            with self._cond:
                if not self._inbox:
                    return
                kind, payload = self._inbox.popleft()
            if kind == "submit":
                self._accept(payload, now)
            elif kind == "model":
                self._replace(payload)
            else:
                self._cancel(payload)
