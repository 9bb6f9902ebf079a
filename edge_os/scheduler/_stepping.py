"""The scheduler loop's engine steps: one batched step per loaded model, the duty-cycle pause, and
the delivery of each step's events to the requests' handles.

A mixin of ``Scheduler`` (``edge_os.scheduler.loop``): its methods run on the loop's thread only.
"""

from __future__ import annotations

import contextlib
import logging

from edge_os.runtime.request import Event, Refused, TextDelta
from edge_os.scheduler._table import Job, LoadedModel
from edge_os.scheduler.periodic import llm_may_step, next_release, update_estimate
from edge_os.scheduler.policy import round_to_pages

log = logging.getLogger("edge_os.scheduler.loop")  # one logger for the whole loop, as before the split


class Stepping:
    """Steps the loaded engines and hands their events on (``Scheduler``'s decoding side)."""

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
