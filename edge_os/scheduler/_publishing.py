"""The scheduler loop's bookkeeping: the loaded models' views, the memory state, when the loop
next has work, recent tok/s, and the status snapshot it publishes.

A mixin of ``Scheduler`` (``edge_os.scheduler.loop``): its methods run on the loop's thread only.
"""

from __future__ import annotations

from edge_os.scheduler import _status
from edge_os.scheduler._table import LoadedModel
from edge_os.scheduler.periodic import next_release
from edge_os.scheduler.policy import MemoryState, ModelView

TOK_S_WINDOW_S = 10.0


class Publishing:
    """Keeps ``Scheduler``'s books and publishes its status snapshot."""

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
