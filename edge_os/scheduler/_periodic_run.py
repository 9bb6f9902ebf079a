"""Running the periodic (TFLite) models' releases for the scheduler: on their own thread after
``start``, or from ``tick`` when the loop is driven by hand.

A mixin of ``Scheduler`` (``edge_os.scheduler.loop``).
"""

from __future__ import annotations

import logging

from edge_os.scheduler.periodic import next_release, raise_thread_priority

log = logging.getLogger("edge_os.scheduler.loop")  # one logger for the whole loop, as before the split


class PeriodicRuns:
    """Runs the periodic models' due releases for ``Scheduler``."""

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
