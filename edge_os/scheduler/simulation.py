"""A simulated engine and clock for the scheduler: no model, no TVM, no real time.

``SimulatedEngine`` follows ``EngineAPI``: one step emits one token per sequence and costs
simulated seconds on a ``SimClock``, which heats a ``SimulatedDevice`` while busy and lets it cool
while idle. ``tools/thermal_sim.py`` and the scheduler's tests use them with the real probes,
governor and loop.
"""

from __future__ import annotations

from typing import Iterator

from edge_os.errors import InputError
from edge_os.package.memory import MemoryFigures
from edge_os.runtime.request import (
    Event,
    FinishReason,
    Finished,
    GenerationRequest,
    TextDelta,
    Timings,
    Usage,
)
from edge_os.scheduler.policy import prompt_token_bound
from edge_os.scheduler.simulated_sysfs import SimulatedDevice


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


def drive(scheduler, clock: SimClock, until: float) -> None:
    """Run ``scheduler.tick()`` on simulated time until ``clock`` reaches ``until``."""
    while clock.now < until:
        before = clock.now
        wake = scheduler.tick()
        if wake > clock.now:
            clock.idle(min(wake, until) - clock.now)
        elif clock.now == before:  # nothing took simulated time (no work or an engine without a clock)
            clock.idle(1e-3)
