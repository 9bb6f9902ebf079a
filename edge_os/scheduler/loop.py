"""The scheduler: one loop owns the table of loaded models and the request queue.

Front doors call ``submit`` and ``Handle.cancel`` from any thread; both only post a command to
the loop's inbox. Everything else (admission, loading, eviction, engine steps, deadlines,
keep-alive, throttling) happens in ``tick``, on one thread, so no state is shared. Decisions come
from the pure functions in ``policy`` and ``governor``; side effects (loading engines, probes,
the clock) are injected, so tests drive ``tick`` by hand with a fake clock and fake sysfs trees.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from edge_os.errors import InputError, SchedulerError
from edge_os.runtime.request import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    InferenceRequest,
    InferenceResult,
    Refused,
    TextDelta,
    Timings,
    Usage,
)
from edge_os.scheduler import _status
from edge_os.scheduler._table import Job, LoadedModel
from edge_os.scheduler.catalog import TFLITE_THREADS, Catalog, ModelEntry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.governor import Governor, Throttle
from edge_os.scheduler.handle import Handle
from edge_os.scheduler.periodic import (
    PeriodicSpec,
    PeriodicTask,
    llm_may_step,
    next_release,
    raise_thread_priority,
    update_estimate,
)
from edge_os.scheduler.policy import (
    Admit,
    MemoryState,
    ModelView,
    Refuse,
    Wait,
    keep_alive_expired,
    plan_memory,
    pressure_victims,
    request_kv_tokens,
    round_to_pages,
)
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, PowerReading, ThermalProbe, ThermalReading
from edge_os.scheduler.sizes import format_size

log = logging.getLogger(__name__)

TOK_S_WINDOW_S = 10.0
PERIODIC_SWITCH_INTERVAL_S = 0.0005
PARTITION_MIN_THREADS = 4  # from this many engine threads on, periodic models get a core of their own


class Scheduler:
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
    ):
        self.catalog = catalog
        self.config = config
        self._memory_probe = memory_probe
        self._thermal_probe = thermal_probe
        self._power_probe = power_probe
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

    # ---- front door (any thread) -------------------------------------------------------------

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

    # ---- the loop ----------------------------------------------------------------------------

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

    def _replace(self, change: ModelEntry | str) -> None:
        """Apply ``set_model``/``remove_model``: the loaded old version retires (it takes no new
        request and is unloaded once its running ones finish), queued requests move to the new one."""
        name = change if isinstance(change, str) else change.name
        entry = None if isinstance(change, str) else change
        if entry is None:
            self.catalog.remove(name)
        else:
            self.catalog.add(entry)
        loaded = self._models.pop(name, None)
        if loaded is not None:
            loaded.retiring = True
            self._retiring.append(loaded)
            what = f"replaced by version {entry.info.version}" if entry else "removed"
            log.info("%s: %s; the loaded version finishes its %d running requests", name, what, len(loaded.jobs))
        for job in [j for j in self._queue if j.entry.name == name]:
            if entry is None:
                self._refuse(job, "model_absent", f"model {name!r} was removed from this device", True)
            else:
                job.entry = entry
                job.kv_tokens = request_kv_tokens(job.request, entry.info.context_length,
                                                  self.config.template_allowance_tokens)
        if entry is not None and (entry.preload or entry.pinned):
            self._preloaded = False  # load the new version as the old one was

    def _unload_retired(self) -> None:
        for loaded in [m for m in self._retiring if not m.jobs]:
            self._unload(loaded.view().name, "replaced by a new version; its requests have finished")

    def _accept(self, job: Job, now: float) -> None:
        request = job.request
        entry = self.catalog.get(request.model)
        if entry is None:
            have = ", ".join(self.catalog.names())
            if request.model:
                reason = f"model {request.model!r} is not on this device; it has {have or 'none'}"
            else:
                reason = "this device serves no model"
            return self._refuse(job, "model_absent", reason, True)
        job.entry = entry
        inference = isinstance(request, InferenceRequest)
        if inference != (entry.info.kind == "tflite"):
            what = "an inference on arrays" if inference else "text generation"
            return self._refuse(job, "invalid_request", f"{entry.name} is a {entry.info.kind} model; it does "
                                f"not serve {what}", False)
        if self._throttle.refuse_new:
            low_battery = self._throttle.refuse_new == "low_battery"
            reason = self._governor.power_reason if low_battery else self._governor.reason
            return self._refuse(job, self._throttle.refuse_new, reason, True)
        if request.deadline is not None and now >= request.deadline:
            return self._refuse(job, "deadline", "the deadline passed before the request arrived", False)
        if not inference:
            job.kv_tokens = request_kv_tokens(request, entry.info.context_length,
                                              self.config.template_allowance_tokens)
        plan = self._plan(job)
        if isinstance(plan, Refuse):
            return self._refuse(job, plan.code, plan.reason, True)
        self._queue.append(job)
        self._last_arrival = max(self._last_arrival, job.arrival)

    def _cancel(self, request_id: str) -> None:
        for job in self._queue:
            if job.request.request_id == request_id:
                self._queue.remove(job)
                return self._emit_finished(job, FinishReason.CANCELLED)
        for loaded in self._loaded():
            for job in loaded.jobs:
                if job.request.request_id == request_id:
                    return self._finish(job, FinishReason.CANCELLED)

    def _sample(self, now: float) -> None:
        self._next_probe = now + self.config.probe_interval_s
        self._memory = self._memory_probe.read()
        if self._thermal_probe is not None:
            self._thermal = self._thermal_probe.read()
        if self._power_probe is not None:
            self._power = self._power_probe.read()
        self._throttle = self._governor.update(self._thermal, self._power)
        for name in pressure_victims(self._memory_state(), self._views()):
            self._unload(name, "other programs need the memory")

    def _expire_deadlines(self, now: float) -> None:
        for job in list(self._queue):
            if job.request.deadline is not None and now >= job.request.deadline:
                self._refuse(job, "deadline", "the deadline passed before the request could start", False)
        for loaded in self._loaded():
            for job in list(loaded.jobs):
                if job.request.deadline is not None and now >= job.request.deadline:
                    self._finish(job, FinishReason.DEADLINE)

    def _preload(self, now: float) -> None:
        self._preloaded = True
        for entry in self.catalog:
            if (entry.preload or entry.pinned) and entry.name not in self._models:
                plan = plan_memory(entry.name, 0, entry.info.resident_bytes, False, self._memory_state(), self._views())
                if isinstance(plan, Admit) and not plan.evict:
                    self._load(entry)
                else:
                    where = "next to the models already loaded" if self._models else "in the memory budget"
                    log.warning("not preloading %s: it does not fit %s", entry.name, where)

    # ---- admission ---------------------------------------------------------------------------

    def _admit(self) -> None:
        """Start queued requests in priority order while memory allows.

        Once a request must wait for memory, requests behind it may not load models, and the busy
        models it waits for take only requests that had already arrived when it began to wait
        (so one load serves every request queued for it, and newcomers cannot starve it).

        Starting a request renders its chat template, which may take up to the render bound: the
        inbox is read again before each start, so cancellations (a front door stopping) take
        effect between starts, and nothing more starts once ``close`` was called.
        """
        blocked = False
        drain: dict[str, int] = {}  # model -> last arrival that may still join it
        for job in sorted(self._queue, key=lambda j: j.order):
            self._drain_inbox(self._clock())
            with self._cond:
                if self._closed:
                    return
            if job not in self._queue:  # cancelled meanwhile
                continue
            if self._throttle.pause_background and job.background:
                continue
            name = job.entry.name
            loaded = self._models.get(name)
            if job.arrival > drain.get(name, job.arrival) or (blocked and loaded is None):
                continue
            if loaded is not None and not loaded.has_room(job):
                continue  # waits for a sequence of its own model to finish
            plan = self._plan(job)
            if isinstance(plan, Refuse):
                self._refuse(job, plan.code, plan.reason, True)
            elif isinstance(plan, Wait):
                if plan.reason != job.wait_reason:
                    log.info("request %s waits: %s", job.request.request_id, plan.reason)
                    job.wait_reason = plan.reason
                if job.blocked_after is None:
                    job.blocked_after = self._last_arrival
                blocked = True
                for model in plan.drain:
                    drain[model] = min(drain.get(model, job.blocked_after), job.blocked_after)
            else:
                for victim in plan.evict:
                    self.evictions += 1
                    self._unload(victim, f"least recently used; making room for {name}")
                if loaded is None and (loaded := self._load(job.entry)) is None:
                    continue
                self._start(job, loaded)

    def _enforce_queue_bound(self) -> None:
        """Refuse the newest, lowest-priority waiting requests beyond ``max_queue``."""
        while len(self._queue) > self.config.max_queue:
            job = max(self._queue, key=lambda j: j.order)
            self._refuse(job, "queue_full", f"{self.config.max_queue} requests are already waiting", True)

    def _plan(self, job: Job) -> Admit | Wait | Refuse:
        name = job.entry.name
        loaded = self._models.get(name)
        model_bytes = loaded.resident if loaded else job.entry.info.resident_bytes
        others = [v for v in self._views() if v.name != name]
        what = f"{name} ({job.kv_tokens} KV tokens)"
        return plan_memory(what, job.kv_bytes, model_bytes, loaded is not None, self._memory_state(), others)

    def _threads_now(self, kind: str) -> int:
        """Engine threads the governor allows a model of ``kind`` now."""
        threads = max(1, round(self.config.threads * self._throttle.thread_fraction))
        if kind == "llm" and self._periodic and threads >= PARTITION_MIN_THREADS:
            # Partitioned: the periodic models' thread keeps a core. Below 4 threads a core is too
            # large a share to reserve for a job of a few percent duty (measured: on 2 cores the LLM
            # lost ~45 % of its tok/s for no fewer misses); the yielding alone keeps the deadlines.
            threads -= TFLITE_THREADS
        return threads

    def _load(self, entry: ModelEntry) -> LoadedModel | None:
        threads = self._threads_now(entry.info.kind)
        try:
            engine = entry.load(threads)
        except Exception as exc:  # a broken package must not take the service down
            log.error("cannot load %s: %s", entry.name, exc)
            for job in [j for j in self._queue if j.entry is entry]:
                self._refuse(job, "model_absent", f"cannot load {entry.name}: {exc}", True)
            return None
        now = self._clock()
        loaded = self._models[entry.name] = LoadedModel(entry, engine, threads, now)
        self.loads += 1
        if loaded.resident > entry.info.resident_bytes:
            # A TFLite arena is measured again at each load (malloc's count moves by a few KiB): noted only.
            say = log.info if entry.info.kind == "tflite" else log.warning
            say("%s holds %s, more than its manifest's %s", entry.name, format_size(loaded.resident),
                format_size(entry.info.resident_bytes))
        log.info("loaded %s (%s, %d threads)", entry.name, format_size(loaded.resident), threads)
        self._memory = self._memory_probe.read()
        return loaded

    def _unload(self, name: str, reason: str) -> None:
        """Unload a model by its view name (a replaced version's is ``NAME (replaced)``)."""
        loaded = self._models.pop(name, None)
        if loaded is None:
            loaded = next(m for m in self._retiring if m.view().name == name)
            self._retiring.remove(loaded)
        loaded.engine.close()
        log.info("unloaded %s: %s", name, reason)
        self._memory = self._memory_probe.read()

    def _start(self, job: Job, loaded: LoadedModel) -> None:
        self._queue.remove(job)
        if isinstance(job.request, InferenceRequest):
            return self._infer(job, loaded)
        try:
            job.seq = loaded.engine.start(job.request)
        except InputError as exc:
            return self._refuse(job, exc.code, str(exc), False)
        except Exception as exc:
            log.exception("%s could not start request %s", loaded.entry.name, job.request.request_id)
            return self._refuse(job, "engine_error", f"{loaded.entry.name} failed: {exc}", True)
        job.model = loaded
        loaded.jobs.append(job)
        loaded.last_used = self._clock()

    def _infer(self, job: Job, loaded: LoadedModel) -> None:
        """Run an inference now (TFLite models take microseconds to milliseconds: no batching)."""
        try:
            outputs, seconds = loaded.engine.run(job.request.inputs, job.request.cast)
        except InputError as exc:
            return self._refuse(job, exc.code, str(exc), False)
        except Exception as exc:
            log.exception("%s could not run request %s", loaded.entry.name, job.request.request_id)
            return self._refuse(job, "engine_error", f"{loaded.entry.name} failed: {exc}", True)
        loaded.last_used = self._clock()
        job.handle.put(InferenceResult(outputs, seconds))

    # ---- periodic models ---------------------------------------------------------------------

    def _periodic_loop(self) -> None:
        """The periodic models' own thread (after ``start``): each release runs at its time on the
        core the LLM leaves free, whatever the loop is doing; then the loop is woken, since an LLM
        step may have been waiting for it."""
        raise_thread_priority()
        while not self._periodic_stop.is_set():
            wait = next_release(self._periodic) - self._clock()
            if wait > 0:
                self._periodic_stop.wait(wait)
                continue
            self._run_periodic()
            with self._cond:
                self._cond.notify()

    def _run_periodic(self) -> None:
        """Run every periodic release that is due (from the periodic thread, or from ``tick``
        before any LLM step when the loop is driven by hand)."""
        for task in self._periodic:
            if not task.due(self._clock()):
                continue
            loaded = self._models.get(task.spec.model)
            if loaded is None:  # not loaded yet (pinned: it loads at start): its schedule has not begun
                task.next_release = self._clock() + task.spec.period_s
                continue
            release = task.take_release(self._clock())
            began = self._clock()
            try:
                task.last_output, _ = loaded.engine.run(task.spec.source())
                if task.spec.sink is not None:
                    task.spec.sink(task.last_output)
            except Exception as exc:  # a bad input or sink must not stop the LLM or the other models
                task.errors += 1
                if str(exc) != task.last_error:
                    log.error("periodic model %s failed: %s", task.spec.model, exc)
                task.last_error = str(exc)
            finished = self._clock()
            task.record(release, began, finished)
            loaded.last_used = finished

    # ---- decoding ----------------------------------------------------------------------------

    def _step_all(self) -> None:
        """One engine step per loaded model over its runnable sequences, then the duty-cycle pause."""
        began, stepped = self._clock(), False
        for loaded in self._loaded():
            jobs = sorted(
                (j for j in loaded.jobs if not (self._throttle.pause_background and j.background)),
                key=lambda j: j.order,
            )[: self._throttle.max_batch]
            if not jobs:
                continue
            if self._periodic and not llm_may_step(self._clock(), loaded.step_estimate_s or 0.0, self._periodic):
                # Until the release; one already due is being run by the periodic thread, which
                # wakes the loop when done (the short timeout only bounds a missed wake-up).
                self._yield_until = max(next_release(self._periodic), self._clock() + 0.0005)
                self.yields += 1
                continue  # yields between tokens: the periodic model runs first
            self._follow_threads(loaded)
            began_step = self._clock()
            self._step(loaded, jobs)
            loaded.step_estimate_s = update_estimate(loaded.step_estimate_s, self._clock() - began_step)
            stepped = True
        if stepped and self._throttle.duty < 1:
            busy = self._clock() - began
            self._resume_at = self._clock() + busy * (1 - self._throttle.duty) / self._throttle.duty

    def _follow_threads(self, loaded: LoadedModel) -> None:
        """Resize the engine's thread pool when the governor's thread fraction changed."""
        threads = self._threads_now(loaded.entry.info.kind)
        if threads != loaded.asked_threads:
            loaded.asked_threads = threads
            log.info("%s now runs on %d threads", loaded.entry.name, loaded.engine.set_threads(threads))

    def _step(self, loaded: LoadedModel, jobs: list[Job]) -> None:
        try:
            events = loaded.engine.step([j.seq for j in jobs])
        except Exception as exc:
            log.exception("%s failed in a step; unloading it", loaded.entry.name)
            for job in list(loaded.jobs):
                with contextlib.suppress(Exception):  # the engine is broken; it is unloaded below
                    loaded.engine.release(job.seq)
                loaded.jobs.remove(job)
                job.handle.put(Refused("engine_error", f"{loaded.entry.name} failed: {exc}", True))
            self._unload(loaded.view().name, "engine failure")
            return
        now = self._clock()
        loaded.last_used = now
        for job in jobs:
            for event in events.get(job.seq, ()):
                self._deliver(job, event, now)
            if job.seq.finished:
                loaded.engine.release(job.seq)
                loaded.jobs.remove(job)
            elif job.seq.kv_tokens > job.kv_tokens:
                # The prompt bound was short (an unusual chat template): account what is real.
                job.kv_tokens = round_to_pages(job.seq.kv_tokens)

    def _deliver(self, job: Job, event: Event, now: float) -> None:
        if isinstance(event, TextDelta):
            job.text.append(event.text)
            job.token_ids.extend(event.token_ids)
            if event.token_ids:
                job.first_token_at = job.first_token_at or now
                self._tokens.append((now, len(event.token_ids)))
                self._window_tokens += len(event.token_ids)
        job.handle.put(event)

    # ---- endings -----------------------------------------------------------------------------

    def _refuse(self, job: Job, code: str, reason: str, fallback: bool) -> None:
        if job in self._queue:
            self._queue.remove(job)
        log.info("refused %s: %s (%s)", job.request.request_id, code, reason)
        job.handle.put(Refused(code=code, reason=reason, fallback=fallback))

    def _finish(self, job: Job, reason: FinishReason) -> None:
        """End a running request now: its KV pages are released before this returns."""
        loaded = job.model
        loaded.engine.release(job.seq)
        loaded.jobs.remove(job)
        self._emit_finished(job, reason)

    def _emit_finished(self, job: Job, reason: FinishReason) -> None:
        now = self._clock()
        completion = len(job.token_ids)
        prompt = max(0, job.seq.kv_tokens - completion) if job.seq is not None else 0
        first = job.first_token_at
        decode_s = now - first if first is not None else 0.0
        timings = Timings(
            ttft_s=(first - job.submitted_at) if first is not None else 0.0,
            prefill_tok_s=0.0,
            decode_tok_s=completion / decode_s if decode_s > 0 else 0.0,
        )
        job.handle.put(Finished("".join(job.text), tuple(job.token_ids), reason, Usage(prompt, completion), timings))

    # ---- bookkeeping -------------------------------------------------------------------------

    def _loaded(self) -> list[LoadedModel]:
        """Every loaded engine: the current versions, then replaced ones still finishing requests."""
        return [*self._models.values(), *self._retiring]

    def _views(self) -> list[ModelView]:
        return [m.view() for m in self._loaded()]

    def _memory_state(self) -> MemoryState:
        accounted = sum(v.bytes for v in self._views())
        unbacked = sum(j.unbacked_bytes for m in self._loaded() for j in m.jobs)
        if not self.config.pooled_memory:
            return MemoryState(budget=self.budget, accounted=accounted)
        reserve = int(self.config.reserve_fraction * self._memory.total_bytes)
        return MemoryState(self.budget, accounted, self._memory, unbacked, reserve)

    def _next_wake(self) -> float:
        runnable = any(
            not (self._throttle.pause_background and j.background) for m in self._loaded() for j in m.jobs
        )
        periodic = next_release(self._periodic)
        if runnable and not self._throttle.stop:
            return min(max(self._clock(), self._resume_at, self._yield_until), periodic)
        times = [self._next_probe, periodic]
        jobs = self._queue + [j for m in self._loaded() for j in m.jobs]
        times += [j.request.deadline for j in jobs if j.request.deadline is not None]
        times += [m.last_used + m.entry.keep_alive_s for m in self._models.values() if not m.jobs]
        return min(times)

    def _tok_s(self, now: float) -> float:
        while self._tokens and self._tokens[0][0] < now - TOK_S_WINDOW_S:
            self._window_tokens -= self._tokens.popleft()[1]
        window = min(TOK_S_WINDOW_S, now - self._started_at)
        return self._window_tokens / window if window > 0 else 0.0

    def _publish(self) -> None:
        now = self._clock()
        mem = self._memory_state()
        self.peak_accounted = max(self.peak_accounted, mem.accounted)
        models = self._loaded()
        status = {
            "models": _status.model_rows(self.catalog, self._models, now, self._retiring),
            "memory": _status.memory_section(mem, self._memory, self.config.pooled_memory, self.peak_accounted),
            "thermal": _status.thermal_section(self._thermal),
            "power": _status.power_section(self._power),
            "governor": self._governor.status(),
            "queue": _status.queue_section(self._queue, self.config.max_queue),
            "running": sum(len(m.jobs) for m in models),
            "tok_s": round(self._tok_s(now), 2),
            "loads": self.loads,
            "evictions": self.evictions,
            "periodic": [t.status() for t in self._periodic],
            "llm_yields": self.yields,
        }
        with self._cond:
            self._status = status
