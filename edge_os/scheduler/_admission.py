"""The scheduler loop's admission: accepting, queueing, planning memory, and starting requests.

A mixin of ``Scheduler`` (``edge_os.scheduler.loop``): its methods run on the loop's thread only.
"""

from __future__ import annotations

import logging

from edge_os.errors import InputError
from edge_os.runtime.request import FinishReason, InferenceRequest, InferenceResult
from edge_os.scheduler._table import Job, LoadedModel
from edge_os.scheduler.policy import Admit, Refuse, Wait, plan_memory, request_kv_tokens

log = logging.getLogger("edge_os.scheduler.loop")  # one logger for the whole loop, as before the split


class Admission:
    """Accepts, plans, queues and starts requests (``Scheduler``'s admission side)."""

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

    def _expire_deadlines(self, now: float) -> None:
        for job in list(self._queue):
            if job.request.deadline is not None and now >= job.request.deadline:
                self._refuse(job, "deadline", "the deadline passed before the request could start", False)
        for loaded in self._loaded():
            for job in list(loaded.jobs):
                if job.request.deadline is not None and now >= job.request.deadline:
                    self._finish(job, FinishReason.DEADLINE)

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
