"""What the agent needs of a model: one constrained chat turn, from an Engine or a scheduler.

Anything with ``turn(messages, constraint, max_tokens) -> str`` is a model to the agent.
"""

from __future__ import annotations

from typing import Protocol

from edge_os.errors import SchedulerError
from edge_os.runtime.request import Finished, GenerationRequest, OutputConstraint, Refused, SamplingParams

# Greedy with a mild repetition penalty: the bundled 135M model answers best so (see cli/chat.py).
AGENT_SAMPLING = SamplingParams(temperature=0.0, repetition_penalty=1.1)


class ChatModel(Protocol):
    def turn(self, messages: list[dict], constraint: OutputConstraint | None, max_tokens: int) -> str:
        """The assistant's next message, decoded under ``constraint`` when one is given."""


def _request(messages: list[dict], constraint: OutputConstraint | None, max_tokens: int,
             sampling: SamplingParams) -> GenerationRequest:
    return GenerationRequest(messages=tuple(messages), constraint=constraint, max_tokens=max_tokens,
                             sampling=sampling)


class EngineModel:
    """A loaded ``edge_os.runtime.engine.Engine`` (one owner: do not share it with a scheduler)."""

    def __init__(self, engine, sampling: SamplingParams = AGENT_SAMPLING) -> None:
        self.engine, self.sampling = engine, sampling

    def turn(self, messages: list[dict], constraint: OutputConstraint | None, max_tokens: int) -> str:
        *_, finished = self.engine.generate(_request(messages, constraint, max_tokens, self.sampling))
        return finished.text


class SchedulerModel:
    """Turns submitted to a scheduler (``SchedulerAPI``), queued with everyone else's requests."""

    def __init__(self, scheduler, sampling: SamplingParams = AGENT_SAMPLING, timeout: float | None = 300) -> None:
        self.scheduler, self.sampling, self.timeout = scheduler, sampling, timeout

    def turn(self, messages: list[dict], constraint: OutputConstraint | None, max_tokens: int) -> str:
        handle = self.scheduler.submit(_request(messages, constraint, max_tokens, self.sampling))
        try:
            for event in handle.events(timeout=self.timeout):
                if isinstance(event, Finished):
                    return event.text
                if isinstance(event, Refused):
                    raise SchedulerError(f"the scheduler refused the agent's turn: {event.reason}")
        except TimeoutError:
            handle.cancel()
            raise SchedulerError(f"the scheduler did not answer the agent's turn within {self.timeout} s") from None
        raise SchedulerError("the scheduler ended the agent's turn without an answer")


def as_model(model_or_scheduler) -> ChatModel:
    """An Engine, a scheduler or anything that already has ``turn``."""
    if hasattr(model_or_scheduler, "turn"):
        return model_or_scheduler
    if hasattr(model_or_scheduler, "generate") and hasattr(model_or_scheduler, "grammars"):
        return EngineModel(model_or_scheduler)
    if hasattr(model_or_scheduler, "submit"):
        return SchedulerModel(model_or_scheduler)
    raise TypeError(f"{type(model_or_scheduler).__name__} is neither an Engine, a scheduler nor a ChatModel")
