"""The ``RequestHandle`` a front door gets back from ``Scheduler.submit``, and the wake-ups its
listeners ask for, held until the scheduler's pass ends (``wakeups_held``)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator

from edge_os.runtime.request import Event, Finished, InferenceResult, Refused

log = logging.getLogger(__name__)
_held = threading.local()  # .wakeups: the wake-ups asked for during this thread's pass, or None


@contextlib.contextmanager
def wakeups_held() -> Iterator[None]:
    """Around one pass of the scheduler loop: the wake-ups listeners ask for with
    ``wake_after_pass`` run once each when the pass ends, not once per event. A step of 4 streams
    hands an event loop 4 events; woken for each, the loop took the GIL from the scheduler 4 times
    in the middle of the pass, and the next step started that much later."""
    wakeups: dict[Callable[[], None], None] = {}  # ordered, each once
    _held.wakeups = wakeups
    try:
        yield
    finally:
        _held.wakeups = None
        for wake in wakeups:
            try:
                wake()
            except Exception:  # one listener's closed loop must not keep the others asleep
                log.debug("a held wake-up failed", exc_info=True)


def wake_after_pass(wake: Callable[[], None]) -> bool:
    """Inside ``wakeups_held`` on this thread: run ``wake`` (once) when the pass ends, and return
    True. Anywhere else return False: the caller wakes its reader now."""
    wakeups = getattr(_held, "wakeups", None)
    if wakeups is None:
        return False
    wakeups[wake] = None
    return True


class Handle:
    """Events of one request, fed by the scheduler loop and read by the front door: with
    ``events()`` on a thread of its own, or handed to a ``listen`` callback as they come."""

    def __init__(self, request_id: str, on_cancel: Callable[[str], None]):
        self.request_id = request_id
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._on_cancel = on_cancel
        self._lock = threading.Lock()  # between put() and listen(): no event lost or reordered
        self._listener: Callable[[Event], None] | None = None

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

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Hand every event to ``listener`` instead of queueing it for ``events()``: those already
        queued at once, the later ones on the producer's thread as they come (no thread of the
        reader's waits for them). ``listener`` must return quickly and never block: the scheduler
        loop calls it between steps (an event loop's ``call_soon_threadsafe`` is the usual one)."""
        with self._lock:
            while True:
                try:
                    listener(self._events.get_nowait())
                except queue.Empty:
                    break
            self._listener = listener

    def put(self, event: Event) -> None:
        """Called by the producer only: the scheduler loop, or a ``ThreadedHandle``'s thread."""
        with self._lock:
            if self._listener is None:
                self._events.put(event)
            else:
                self._listener(event)
