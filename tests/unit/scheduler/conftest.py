"""A scheduler on simulated engines, a simulated clock and a fake sysfs tree, driven by hand."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edge_os.package.memory import MemoryFigures
from edge_os.runtime.request import Event, Finished, GenerationRequest, Refused
from edge_os.scheduler.catalog import Catalog, ModelEntry, ModelInfo
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from tests.scheduler_simulation import SimClock, SimulatedEngine
from tests.simulated_sysfs import SimulatedDevice

M = 1 << 20
G = 1 << 30


@dataclass
class Harness:
    scheduler: Scheduler
    clock: SimClock
    device: SimulatedDevice
    engines: dict[str, list[SimulatedEngine]] = field(default_factory=dict)

    def engine(self, name: str) -> SimulatedEngine:
        return self.engines[name][-1]

    def submit(self, prompt="hi", **kw):
        return self.scheduler.submit(GenerationRequest(prompt=prompt, **kw))

    def run(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.scheduler.tick()

    def run_until_done(self, handles, limit: int = 10_000) -> dict[str, list[Event]]:
        """Tick until every handle has its last event; returns the events by request id."""
        got = {h.request_id: [] for h in handles}
        for _ in range(limit):
            for h in handles:
                events = got[h.request_id]
                if events and isinstance(events[-1], (Finished, Refused)):
                    continue
                try:
                    events.extend(h.events(timeout=0))
                except TimeoutError:
                    pass
            if all(e and isinstance(e[-1], (Finished, Refused)) for e in got.values()):
                return got
            wake = self.scheduler.tick()
            if wake is not None and wake > self.clock.now:
                self.clock.idle(wake - self.clock.now)
        raise AssertionError(f"requests did not finish in {limit} ticks: {got}")


def last(events: list[Event]) -> Event:
    return events[-1]


@pytest.fixture
def harness(tmp_path):
    """``harness(models={"a": (weight, kv_per_token, workspace)}, budget=..., **config)``.

    ``pool=(tokens, max_batch)`` makes every model an engine with a KV pool allocated at load.
    """

    def make(models, budget=4 * G, mem_total=16 * G, mem_available=12 * G, keep_alive_s=300.0,
             pinned=(), preload=(), allocate=False, context_length=2048, fail_load=(), pool=(0, None),
             cpu_probe=None, **config):
        device = SimulatedDevice(tmp_path, mem_total=mem_total, mem_available=mem_available)
        clock = SimClock()
        h = Harness(scheduler=None, clock=clock, device=device)
        state = {"available": mem_available}

        def loader(info: ModelInfo):
            def load(threads: int) -> SimulatedEngine:
                if info.name in fail_load:
                    raise OSError("weights file is truncated")
                engine = SimulatedEngine(info.name, info.memory, clock, context_length=context_length)
                engine.threads = threads
                if allocate:  # a real engine's weights come out of MemAvailable
                    state["available"] -= info.resident_bytes
                    device.set_memory(mem_total, state["available"])
                    close = engine.close

                    def close_and_free():
                        state["available"] += info.resident_bytes
                        device.set_memory(mem_total, state["available"])
                        close()

                    engine.close = close_and_free
                h.engines.setdefault(info.name, []).append(engine)
                return engine

            return load

        catalog = Catalog()
        for name, (weights, kv, workspace) in models.items():
            info = ModelInfo(name, MemoryFigures(weights, kv, workspace), context_length, *pool)
            catalog.add(ModelEntry(info, loader(info), keep_alive_s=keep_alive_s,
                                   pinned=name in pinned, preload=name in preload))
        config.setdefault("pooled_memory", False)
        config.setdefault("template_allowance_tokens", 0)
        h.scheduler = Scheduler(
            catalog,
            SchedulerConfig(budget_bytes=budget, **config),
            MemoryProbe(device.meminfo_path),
            ThermalProbe(device.thermal_dir),
            PowerProbe(device.power_dir),
            clock=clock,
            cpu_probe=cpu_probe,
        )
        return h

    return make
