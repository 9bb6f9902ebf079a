"""The scheduler loop's table of loaded models: preloading, loading, unloading, replacing versions,
the governor's thread count, and the probes' sampling that may unload under memory pressure.

A mixin of ``Scheduler`` (``edge_os.scheduler.loop``): its methods run on the loop's thread only.
"""

from __future__ import annotations

import logging

from edge_os.scheduler._table import LoadedModel
from edge_os.scheduler.catalog import TFLITE_THREADS, ModelEntry
from edge_os.scheduler.policy import Admit, plan_memory, pressure_victims, request_kv_tokens
from edge_os.scheduler.sizes import format_size

log = logging.getLogger("edge_os.scheduler.loop")  # one logger for the whole loop, as before the split

PARTITION_MIN_THREADS = 4  # from this many engine threads on, periodic models get a core of their own


class ModelTable:
    """Loads, unloads and replaces the models ``Scheduler`` serves."""

    def _sample(self, now: float) -> None:
        self._next_probe = now + self.config.probe_interval_s
        self._memory = self._memory_probe.read()
        if self._thermal_probe is not None:
            self._thermal = self._thermal_probe.read()
        if self._power_probe is not None:
            self._power = self._power_probe.read()
        self._throttle = self._governor.update(self._thermal, self._power)
        if self._cpu_probe is not None:
            self._throttle = self._throttle.strictest(self._cpu_share.update(self._cpu_probe.read()))
        for name in pressure_victims(self._memory_state(), self._views()):
            self._unload(name, "other programs need the memory")

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

    def _follow_threads(self, loaded: LoadedModel) -> None:
        """Resize the engine's thread pool when the governor's thread fraction changed."""
        threads = self._threads_now(loaded.entry.info.kind)
        if threads != loaded.asked_threads:
            loaded.asked_threads = threads
            log.info("%s now runs on %d threads", loaded.entry.name, loaded.engine.set_threads(threads))
