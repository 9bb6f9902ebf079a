"""A simulated engine and clock for the scheduler: no model, no TVM, no real time.

``SimulatedEngine`` follows ``EngineAPI``: one step emits one token per sequence and costs
simulated seconds on a ``SimClock``, which heats a ``SimulatedDevice`` while busy and lets it cool
while idle. ``tools/thermal_sim.py`` and the scheduler's tests use them with the real probes,
governor and loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_os.errors import InputError
from edge_os.package.memory import MemoryFigures
from edge_os.runtime.request import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    Refused,
    TextDelta,
    Timings,
    Usage,
)
from edge_os.scheduler.catalog import Catalog, ModelEntry, ModelInfo
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.governor import GovernorConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.policy import prompt_token_bound
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from tests.simulated_sysfs import SimulatedDevice, SimZone, ThermalModel


class SimClock:
    """Simulated monotonic time; ``work`` heats the device, ``idle`` lets it cool."""

    def __init__(self, device: SimulatedDevice | None = None, start: float = 1000.0):
        self.now = start
        self.device = device
        self.busy_s = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> float:
        """Compute for ``seconds`` at full clock; returns how long it took (longer when the
        simulated kernel throttles, at proportionally lower power)."""
        slowdown = self.device.slowdown if self.device else 1.0
        took = seconds * slowdown
        if self.device:
            self.device.advance(took, busy_fraction=1.0 / slowdown)
        self.now += took
        self.busy_s += took
        return took

    def idle(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.device:
            self.device.advance(seconds, busy_fraction=0.0)
        self.now += seconds


class SimSequence:
    """A sequence of ``SimulatedEngine``; ``released`` tells tests its pages were freed."""

    def __init__(self, request: GenerationRequest, prompt_tokens: int):
        self.request = request
        self.prompt_tokens = prompt_tokens
        self.finished = False
        self.kv_tokens = 0
        self.generated = 0
        self.released = False


class SimulatedEngine:
    """An engine with given memory figures whose tokens are `` w0 w1 ...``.

    A step costs ``step_s + per_seq_s * batch`` simulated seconds (decode is memory bound, so a
    batch costs little more than one sequence). ``live`` holds the sequences not yet released.
    """

    def __init__(
        self,
        name: str,
        memory: MemoryFigures,
        clock: SimClock | None = None,
        context_length: int = 2048,
        step_s: float = 0.02,
        per_seq_s: float = 0.002,
    ):
        self.name = name
        self.memory = memory
        self.context_length = context_length
        self.clock = clock
        self.step_s = step_s
        self.per_seq_s = per_seq_s
        self.live: set[SimSequence] = set()
        self.steps: list[int] = []  # batch size of every step
        self.started: list[str] = []  # request ids in the order they were started
        self.closed = False
        self.threads = 1
        self.prefix_cache = None
        self.thread_changes: list[int] = []  # every set_threads, in order

    def set_threads(self, threads: int) -> int:
        self.threads = threads
        self.thread_changes.append(threads)
        return threads

    def start(self, request: GenerationRequest) -> SimSequence:
        prompt = prompt_token_bound(request)
        if prompt >= self.context_length:
            raise InputError(f"the prompt has {prompt} tokens; {self.name} holds {self.context_length}")
        seq = SimSequence(request, prompt)
        self.live.add(seq)
        self.started.append(request.request_id)
        return seq

    def step(self, sequences: list[SimSequence]) -> dict[SimSequence, list[Event]]:
        todo = [s for s in sequences if not s.finished]
        if self.clock is not None and todo:
            self.clock.work(self.step_s + self.per_seq_s * len(todo))
        self.steps.append(len(todo))
        out: dict[SimSequence, list[Event]] = {}
        for seq in todo:
            if seq.kv_tokens == 0:
                seq.kv_tokens = seq.prompt_tokens
                out[seq] = []
                continue
            token = seq.generated
            seq.generated += 1
            seq.kv_tokens += 1
            events: list[Event] = [TextDelta(f" w{token}", (token,))]
            if seq.generated >= seq.request.max_tokens or seq.kv_tokens >= self.context_length:
                seq.finished = True
                text = "".join(f" w{i}" for i in range(seq.generated))
                reason = FinishReason.LENGTH
                events.append(Finished(text, tuple(range(seq.generated)), reason,
                                       Usage(seq.prompt_tokens, seq.generated), Timings(0.0, 0.0, 0.0)))
            out[seq] = events
        return out

    def release(self, sequence: SimSequence) -> None:
        sequence.released = True
        self.live.discard(sequence)

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        seq = self.start(request)
        try:
            while not seq.finished:
                yield from self.step([seq])[seq]
        finally:
            self.release(seq)

    def close(self) -> None:
        self.closed = True
        self.live.clear()


@dataclass
class SustainedRun:
    """What ``sustained_run`` measured, one sample per simulated second."""

    governed: bool
    setpoint_c: float
    trip_c: float
    times: list[float] = field(default_factory=list)
    temps_c: list[float] = field(default_factory=list)
    tok_s: list[float] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    tokens: int = 0

    @property
    def max_temp_c(self) -> float:
        return max(self.temps_c)

    @property
    def mean_tok_s(self) -> float:
        return self.tokens / self.times[-1] if self.times else 0.0


def sustained_run(
    root: Path,
    governed: bool,
    seconds: float = 240.0,
    concurrent: int = 4,
    setpoint_c: float = 75.0,
    hysteresis_c: float = 5.0,
) -> SustainedRun:
    """Keep ``concurrent`` requests of 256 tokens in flight for ``seconds`` on a simulated device
    at ``root`` (a finished one is replaced at once).

    The real probes read the tree the simulator writes, and the real governor and loop decide;
    only the engine, the clock and the physics are simulated.
    """
    device = SimulatedDevice(root, zones=(SimZone("cpu-thermal"),), model=ThermalModel())
    clock = SimClock(device)
    memory = MemoryFigures(weight_bytes=100 << 20, kv_bytes_per_token=16 << 10, workspace_bytes=16 << 20)
    engine = SimulatedEngine("sim", memory, clock)
    catalog = Catalog([ModelEntry(ModelInfo("sim", memory, engine.context_length), lambda threads: engine)])
    config = SchedulerConfig(
        budget_bytes=1 << 30,
        pooled_memory=False,
        governor=GovernorConfig(setpoint_c=setpoint_c, hysteresis_c=hysteresis_c, enabled=governed),
    )
    scheduler = Scheduler(catalog, config, MemoryProbe(device.meminfo_path), ThermalProbe(device.thermal_dir),
                          PowerProbe(device.power_dir), clock=clock)
    result = SustainedRun(governed, scheduler._governor.setpoint_c, device.passive_trip_c)
    submitted = itertools.count()

    def new_request():
        return scheduler.submit(GenerationRequest(prompt=f"load {next(submitted)}", max_tokens=256))

    handles = [new_request() for _ in range(concurrent)]
    start, produced, next_sample = clock.now, 0, clock.now + 1.0
    while clock.now - start < seconds:
        wake = scheduler.tick()
        for i, handle in enumerate(handles):
            try:
                for event in handle.events(timeout=0):
                    produced += len(event.token_ids) if isinstance(event, TextDelta) else 0
                    if isinstance(event, (Finished, Refused)):
                        handles[i] = new_request()
            except TimeoutError:
                pass
        if wake > clock.now:
            clock.idle(min(wake, next_sample) - clock.now)
        if clock.now >= next_sample:
            status = scheduler.status()
            result.times.append(clock.now - start)
            result.temps_c.append(device.model.temp_c)
            result.tok_s.append(produced)
            result.levels.append(status["governor"]["level"])
            result.setpoint_c = status["governor"]["setpoint_c"]
            result.tokens += produced
            produced, next_sample = 0, next_sample + 1.0
    scheduler.close()
    return result
