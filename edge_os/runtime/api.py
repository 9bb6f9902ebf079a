"""What the scheduler sees of an engine: sequences advanced together, one token per step.

``generate`` is the one-request convenience built on ``start``/``step``/``release``; the scheduler
uses the step interface so several requests of one model decode in one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from edge_os.package.memory import MemoryFigures
from edge_os.runtime.prefix_cache import PrefixCache
from edge_os.runtime.request import Event, GenerationRequest


class Sequence(Protocol):
    request: GenerationRequest
    finished: bool  # true once its Finished event has been produced
    kv_tokens: int  # tokens currently held in the KV cache for it


class EngineAPI(Protocol):
    name: str
    memory: MemoryFigures
    context_length: int
    threads: int  # threads its kernels really run on now
    prefix_cache: PrefixCache | None  # prompts kept for requests that start the same way (LLM engines)

    def start(self, request: GenerationRequest) -> Sequence:
        """Tokenize and admit a request (raises ``InputError`` if the prompt does not fit)."""

    def step(self, sequences: list[Sequence]) -> dict[Sequence, list[Event]]:
        """Advance each unfinished sequence: one decode token for the running ones (batched), and a
        chunk of the prompt for new ones (the first token comes with the last chunk)."""

    def set_threads(self, threads: int) -> int:
        """Run the next steps on ``threads`` threads; returns the threads really in use."""

    def release(self, sequence: Sequence) -> None:
        """Free the sequence's KV pages now (also for unfinished, cancelled sequences)."""

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        """start + step until finished + release."""

    def close(self) -> None:
        """Free everything the engine holds."""
