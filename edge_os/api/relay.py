"""From a scheduler handle (blocking, any thread) to the event loop, and back when a client leaves.

``EventStream`` has the scheduler hand each event to asyncio as it comes.
``until_disconnect`` returns when the client closes the connection; the app races it against
the request so a departed client's request is cancelled (its KV pages freed) at once.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from edge_os.api.errors import ApiError
from edge_os.runtime.request import Event, Finished, Refused
from edge_os.scheduler.api import RequestHandle
from edge_os.scheduler.handle import wake_after_pass

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict]]

# Refusal codes -> HTTP status. Everything the device cannot do right now is 503 (or 429 when
# only the queue is full); what is wrong with the request itself is 400.
_STATUS = {"queue_full": 429, "invalid_request": 400, "model_absent": 503, "over_memory": 503, "too_hot": 503,
           "low_battery": 503, "engine_error": 503, "shutting_down": 503, "deadline": 504, "timeout": 504}
RETRY_AFTER_S = {"queue_full": 1, "too_hot": 30, "low_battery": 60, "shutting_down": 5}


class ClientGone(Exception):
    """The client closed the connection before its answer was complete."""


def refusal_error(refused: Refused) -> ApiError:
    status = _STATUS.get(refused.code, 503)
    too_long = refused.code == "invalid_request" and "context" in refused.reason
    code = "context_length_exceeded" if too_long else refused.code
    headers = {"Retry-After": str(RETRY_AFTER_S[refused.code])} if refused.code in RETRY_AFTER_S else {}
    return ApiError(status, refused.reason, code=code, headers=headers)


class Mailbox:
    """Calls posted from other threads, run on one event loop in the order posted; the loop is
    woken once for everything posted before it runs them (``call_soon_threadsafe`` alone wakes it
    for each, and each wake-up takes the GIL from the scheduler in the middle of its step), and
    on the scheduler's thread once for everything posted in its pass."""

    _of_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Mailbox] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: deque[tuple[Callable[[Event], None], Event]] = deque()
        self._lock = threading.Lock()
        self._woken = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Mailbox:
        """The loop's mailbox (made on first use; call on the loop's thread)."""
        if loop not in cls._of_loop:
            cls._of_loop[loop] = cls(loop)
        return cls._of_loop[loop]

    def post(self, call: Callable[[Event], None], event: Event) -> None:
        """Any thread: run ``call(event)`` on the loop soon (on the scheduler's thread, once its
        pass ends: ``wake_after_pass``). Raises ``RuntimeError`` if the loop is closed."""
        if self._loop.is_closed():
            raise RuntimeError("the event loop is closed")
        with self._lock:
            self._calls.append((call, event))
            if self._woken:
                return
            self._woken = True
        if not wake_after_pass(self._wake):
            self._wake()

    def _wake(self) -> None:
        # A loop closed since ``post`` checked raises ``RuntimeError`` here; ``_woken`` can stay
        # set: every later post finds the loop closed and raises before it would be read.
        self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            calls, self._calls, self._woken = self._calls, deque(), False
        for call, event in calls:
            call(event)


class EventStream:
    """The events of one request, read with ``await next()`` on the event loop; ``observe`` sees
    each one as it is read (the request's metrics).

    The scheduler hands each event straight to the loop's ``Mailbox``, no thread of ours in
    between: with 4 streams on 2 cores, a relay thread's wake-up per token took CPU and the GIL
    from the decoding threads. A watchdog ends the request if no event comes for ``timeout_s``."""

    def __init__(self, handle: RequestHandle, timeout_s: float, observe: Callable[[Event], None]) -> None:
        self.handle = handle
        self._observe = observe
        self.done = False  # the last event (Finished or Refused) has been read
        self._loop = asyncio.get_running_loop()
        self._mailbox = Mailbox.of(self._loop)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._timeout_s = timeout_s
        self._last_event_at = self._loop.time()
        self._ended = False  # the last event has arrived (or the watchdog gave up): later ones are dropped
        self._watchdog = self._loop.call_later(timeout_s, self._check_progress)
        handle.listen(self._from_producer)

    def _from_producer(self, event: Event) -> None:
        """On the scheduler's thread."""
        try:
            self._mailbox.post(self._arrived, event)
        except RuntimeError:  # the server's loop is gone: nobody will read this request
            self.handle.cancel()

    def _arrived(self, event: Event) -> None:
        if self._ended:
            return
        self._last_event_at = self._loop.time()
        if isinstance(event, (Finished, Refused)):
            self._end()
        self._queue.put_nowait(event)

    def _check_progress(self) -> None:
        if self._ended:
            return
        idle = self._loop.time() - self._last_event_at
        if idle < self._timeout_s:
            self._watchdog = self._loop.call_later(self._timeout_s - idle, self._check_progress)
            return
        self._end()
        self.handle.cancel()
        self._queue.put_nowait(Refused("timeout", f"no progress from the scheduler for {self._timeout_s:.0f} s", False))

    def _end(self) -> None:
        self._ended = True
        self._watchdog.cancel()

    async def next(self) -> Event:
        event = await self._queue.get()
        self._observe(event)
        if isinstance(event, (Finished, Refused)):
            self.done = True
        return event

    def close(self) -> None:
        """Cancel the request unless it already ended (safe to call more than once)."""
        if not self.done:
            self.handle.cancel()
        self._end()


async def until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """``await work``, or raise ``ClientGone`` as soon as the client disconnects."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise ClientGone()
