"""What a cloud worker answers with, behind the scheduler's front-door contract.

``ThreadedHandle`` runs a blocking generator of events on its own thread so ``events(timeout)``
and ``cancel()`` behave as the scheduler's handles do. ``EngineBackend`` serves a local edge-os
engine one request at a time; ``edge_os.mqtt.openai_backend`` serves an OpenAI-compatible server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing

from edge_os.errors import InputError
from edge_os.runtime.api import EngineAPI
from edge_os.runtime.request import Event, Finished, FinishReason, GenerationRequest, Refused, Timings, Usage
from edge_os.scheduler.handle import Handle

EventSource = Callable[[GenerationRequest, threading.Event], Iterator[Event]]


class ThreadedHandle(Handle):
    """A ``RequestHandle`` over ``source(request, cancelled)`` running on a daemon thread."""

    def __init__(self, request: GenerationRequest, source: EventSource) -> None:
        self._cancelled = threading.Event()
        super().__init__(request.request_id, lambda _request_id: self._cancelled.set())
        self._request = request
        threading.Thread(target=self._run, args=(source,), name=f"backend-{self.request_id[:8]}", daemon=True).start()

    def _run(self, source: EventSource) -> None:
        try:
            for event in source(self._request, self._cancelled):
                if self._cancelled.is_set():
                    break
                self.put(event)
                if isinstance(event, (Finished, Refused)):
                    return
            if self._cancelled.is_set():
                self.put(cancelled(""))
            else:
                self.put(Refused("upstream_error", "the backend ended without an answer", fallback=False))
        except InputError as exc:  # e.g. a prompt longer than the context
            self.put(Refused(exc.code, str(exc), fallback=False))
        except Exception as exc:  # the backend's failure becomes the request's error answer
            self.put(Refused("upstream_error", f"{type(exc).__name__}: {exc}", fallback=False))


def cancelled(text: str) -> Finished:
    return Finished(text, (), FinishReason.CANCELLED, Usage(0, 0), Timings(0.0, 0.0, 0.0))


class EngineBackend:
    """Serves requests on one engine, one at a time (the cloud side has no memory budget games)."""

    def __init__(self, engine: EngineAPI) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._served = 0

    def submit(self, request: GenerationRequest) -> ThreadedHandle:
        return ThreadedHandle(request, self._generate)

    def status(self) -> dict:
        return {"models": [self._engine.name], "served": self._served, "uptime_s": time.monotonic() - self._started}

    def _generate(self, request: GenerationRequest, cancelled_flag: threading.Event) -> Iterator[Event]:
        with self._lock, closing(self._engine.generate(request)) as events:  # closing frees the KV pages
            for event in events:
                yield event
                if cancelled_flag.is_set():
                    return
            self._served += 1
