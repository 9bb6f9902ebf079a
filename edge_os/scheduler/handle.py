"""The ``RequestHandle`` a front door gets back from ``Scheduler.submit``."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator

from edge_os.runtime.request import Event, Finished, InferenceResult, Refused


class Handle:
    """Events of one request, fed by the scheduler loop and read by the front door's thread."""

    def __init__(self, request_id: str, on_cancel: Callable[[str], None]):
        self.request_id = request_id
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._on_cancel = on_cancel

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Yield events as they come; the last one is ``Finished``, ``InferenceResult`` or ``Refused``.

        Raises ``TimeoutError`` if no event arrives within ``timeout`` seconds.
        """
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no event for request {self.request_id} in {timeout} s") from None
            yield event
            if isinstance(event, (Finished, Refused, InferenceResult)):
                return

    def cancel(self) -> None:
        """Stop the request and free its KV pages at once; it finishes with reason ``cancelled``."""
        self._on_cancel(self.request_id)

    def put(self, event: Event) -> None:
        """Called by the producer only: the scheduler loop, or a ``ThreadedHandle``'s thread."""
        self._events.put(event)
