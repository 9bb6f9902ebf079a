"""What the agent needs of a model: one constrained chat turn, from an Engine or a scheduler.

Anything with ``turn(messages, constraint, max_tokens) -> str`` is a model to the agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
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
    """Turns submitted to a scheduler (``SchedulerAPI``), queued with everyone else's requests.

    With ``cloud`` (an ``edge_os.api.cloud.CloudRoute``: ``takes(refused)``, ``submit(request)``), a
    turn the scheduler refuses in a way the fallback policy lets the cloud serve (too hot, over
    memory...) goes to the cloud instead, redacted and without the grammar (the agent checks every
    call again, and the policy still decides what reaches the device); ``on_fallback(refused)`` is
    told first (the agent's audit log records it).
    """

    def __init__(self, scheduler, sampling: SamplingParams = AGENT_SAMPLING, timeout: float | None = 300,
                 cloud=None, on_fallback: Callable[[Refused], None] | None = None) -> None:
        self.scheduler, self.sampling, self.timeout = scheduler, sampling, timeout
        self.cloud, self.on_fallback = cloud, on_fallback

    def turn(self, messages: list[dict], constraint: OutputConstraint | None, max_tokens: int) -> str:
        request = _request(messages, constraint, max_tokens, self.sampling)
        try:
            return _answer(self.scheduler.submit(request), self.timeout, "the scheduler")
        except _Refusal as refusal:
            refused = refusal.refused
            if self.cloud is None or not self.cloud.takes(refused):
                raise SchedulerError(f"the scheduler refused the agent's turn: {refused.reason}") from None
        if self.on_fallback is not None:
            self.on_fallback(refused)
        try:
            outgoing = replace(request, constraint=None, messages=tuple(_plain(m) for m in messages))
            return _answer(self.cloud.submit(outgoing), self.cloud.policy.timeout_s, "the cloud")
        except _Refusal as refusal:
            raise SchedulerError(f"the scheduler refused the agent's turn ({refused.code}: {refused.reason}) "
                                 f"and the cloud failed too: {refusal.refused.reason}") from None


class _Refusal(Exception):
    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.reason)
        self.refused = refused


def _plain(message: dict) -> dict:
    """A tool result as a user message: an OpenAI-compatible server wants a ``tool`` message to
    answer a ``tool_calls`` message, and the agent's calls are written in text."""
    if message.get("role") == "tool":
        return {"role": "user", "content": f"Tool result: {message['content']}"}
    return message


def _answer(handle, timeout: float | None, who: str) -> str:
    """The text ``handle`` finishes with; ``_Refusal`` when it is refused."""
    try:
        for event in handle.events(timeout=timeout):
            if isinstance(event, Finished):
                return event.text
            if isinstance(event, Refused):
                raise _Refusal(event)
    except TimeoutError:
        handle.cancel()
        raise SchedulerError(f"{who} did not answer the agent's turn within {timeout} s") from None
    raise SchedulerError(f"{who} ended the agent's turn without an answer")


def as_model(model_or_scheduler) -> ChatModel:
    """An Engine, a scheduler or anything that already has ``turn``."""
    if hasattr(model_or_scheduler, "turn"):
        return model_or_scheduler
    if hasattr(model_or_scheduler, "generate") and hasattr(model_or_scheduler, "grammars"):
        return EngineModel(model_or_scheduler)
    if hasattr(model_or_scheduler, "submit"):
        return SchedulerModel(model_or_scheduler)
    raise TypeError(f"{type(model_or_scheduler).__name__} is neither an Engine, a scheduler nor a ChatModel")
