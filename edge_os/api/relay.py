"""From a scheduler handle (blocking, any thread) to the event loop, and back when a client leaves.

``EventStream`` runs ``handle.events`` on a small thread and hands each event to asyncio.
``until_disconnect`` returns when the client closes the connection; the app races it against
the request so a departed client's request is cancelled (its KV pages freed) at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from edge_os.api.errors import ApiError
from edge_os.runtime.request import Event, Finished, Refused
from edge_os.scheduler.api import RequestHandle

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


class EventStream:
    """The events of one request, read with ``await next()`` on the event loop; ``observe`` sees
    each one as it is read (the request's metrics)."""

    def __init__(self, handle: RequestHandle, timeout_s: float, observe: Callable[[Event], None]) -> None:
        self.handle = handle
        self._observe = observe
        self.done = False  # the last event (Finished or Refused) has been read
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._timeout_s = timeout_s
        threading.Thread(target=self._pump, name=f"http-{handle.request_id[-8:]}", daemon=True).start()

    def _pump(self) -> None:
        try:
            for event in self.handle.events(timeout=self._timeout_s):
                self._put(event)
        except TimeoutError:
            self.handle.cancel()
            self._put(Refused("timeout", f"no progress from the scheduler for {self._timeout_s:.0f} s", False))

    def _put(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the server's loop is gone: nobody will read this request
            self.handle.cancel()

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
