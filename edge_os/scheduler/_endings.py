"""How requests end in the scheduler loop: refused, finished early (cancel, deadline), and the
``Finished`` event of a request ended by the loop rather than by its engine.

A mixin of ``Scheduler`` (``edge_os.scheduler.loop``): its methods run on the loop's thread only.
"""

from __future__ import annotations

import logging

from edge_os.runtime.request import Finished, FinishReason, Refused, Timings, Usage
from edge_os.scheduler._table import Job

log = logging.getLogger("edge_os.scheduler.loop")  # one logger for the whole loop, as before the split


class Endings:
    """Ends requests for ``Scheduler``: refusals, early finishes and their ``Finished`` events."""

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
