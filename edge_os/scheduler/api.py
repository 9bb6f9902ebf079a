"""What front doors (CLI service, MQTT, HTTP, agent) see of the scheduler.

A front door submits a ``GenerationRequest`` and reads events from the returned handle: zero or
more ``TextDelta``, then exactly one ``Finished`` or ``Refused``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from edge_os.runtime.request import Event, GenerationRequest


class RequestHandle(Protocol):
    request_id: str

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they come; the last one is ``Finished`` or ``Refused``.

        Raises ``TimeoutError`` if no event arrives within ``timeout`` seconds.
        """

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Hand the events to ``listener`` (on the producer's thread, quick, never blocking) as
        they come, instead of to ``events()``."""

    def cancel(self) -> None:
        """Stop the request and free its KV pages at once; it finishes with reason ``cancelled``."""


class SchedulerAPI(Protocol):
    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue a request; never blocks on generation."""

    def status(self) -> dict:
        """A JSON-able snapshot: loaded models, memory used and budget, temperatures, governor
        state, queue length, recent tok/s."""
