"""Agent runs that ask during the run over HTTP (docs/agent.md, *Over HTTP*).

A run started with ``"stream": true`` (server-sent events) or ``"background": true`` (answered at
once, polled at ``GET /v1/agent/runs/{id}``) runs on its own thread. Every audit entry of the run
becomes an event; an actuator that needs confirmation adds a ``confirmation_required`` event (id,
tool, arguments, timeout) and the run waits for ``POST /v1/agent/runs/{id}/confirmations/{cid}``
``{"answer": "yes"|"no"}``; no answer within the policy's ``confirm_timeout_s`` is no. A run is seen
only with the API key that started it: for any other key it does not exist (404). At most
``max_unfinished`` such runs (all keys together) are unfinished at once: each holds a thread and
waits its turn for the device, so more are refused with 429 ``too_many_runs``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from typing import Any

from edge_os.api.errors import ApiError

KEEP_FINISHED = 64  # finished runs kept for polling, oldest forgotten first
MAX_UNFINISHED = 8  # live runs started and not finished, all keys together


class LiveRun:
    """One run as its client sees it: the events so far, the questions waiting, the result."""

    def __init__(self, run_id: str, owner: str) -> None:
        self.id, self.owner = run_id, owner
        self.events: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self._pending: dict[str, tuple[threading.Event, dict[str, str]]] = {}
        self._changed = threading.Condition()

    # --- written by the run's thread --------------------------------------------------------
    def tell(self, kind: str, data: dict) -> None:
        self._add({"type": kind, **data})

    def finish(self, result: dict[str, Any]) -> None:
        self.result = result
        self._add({"type": "run_finished", "run": result})

    def ask(self, question: str, timeout: float) -> bool | None:
        """The confirmation callback: a ``confirmation_required`` event, then the client's answer
        (None when none came within ``timeout``)."""
        tool, _, rest = question.partition(" ")
        try:
            arguments = json.loads(rest.removesuffix(": allow?"))
        except ValueError:
            arguments = rest
        cid = uuid.uuid4().hex[:12]
        answered, box = threading.Event(), {}
        with self._changed:
            self._pending[cid] = (answered, box)
        self._add({"type": "confirmation_required", "id": cid, "tool": tool, "arguments": arguments,
                   "timeout_s": timeout, "answer_at": f"/v1/agent/runs/{self.id}/confirmations/{cid}"})
        try:
            answered.wait(timeout)
        finally:
            with self._changed:
                self._pending.pop(cid, None)
        return box["answer"] == "yes" if "answer" in box else None

    def _add(self, event: dict[str, Any]) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    # --- read and answered by the client ----------------------------------------------------
    def answer(self, cid: str, answer: str) -> None:
        with self._changed:
            pending = self._pending.pop(cid, None)
        if pending is None:
            raise ApiError(404, f"run {self.id} is waiting for no confirmation {cid!r} (unknown, answered or "
                                "timed out)", code="confirmation_not_found")
        answered, box = pending
        box["answer"] = answer
        answered.set()

    def events_after(self, seen: int, timeout: float) -> list[dict[str, Any]]:
        """The events after the first ``seen``, waiting up to ``timeout`` for one."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) > seen, timeout)
            return self.events[seen:]

    def describe(self) -> dict[str, Any]:
        """The run as ``GET /v1/agent/runs/{id}`` shows it."""
        with self._changed:
            waiting = [e for e in self.events if e["type"] == "confirmation_required" and e["id"] in self._pending]
            body: dict[str, Any] = {"id": self.id, "object": "agent.run",
                                    "status": "completed" if self.result is not None
                                    else "requires_action" if waiting else "in_progress",
                                    "events": list(self.events)}
        if waiting:
            body["required_action"] = {"type": "confirmation", "confirmations": waiting}
        if self.result is not None:
            body["result"] = self.result
        return body


class LiveRuns:
    """The live runs of one server, by id."""

    def __init__(self, max_unfinished: int = MAX_UNFINISHED) -> None:
        self._runs: OrderedDict[str, LiveRun] = OrderedDict()
        self._lock = threading.Lock()
        self.max_unfinished = max_unfinished

    def start(self, owner: str, work) -> LiveRun:
        """A new run of ``work(run)`` (returning the result) on its own thread; 429 ``too_many_runs``
        while ``max_unfinished`` runs have not finished."""
        run = LiveRun(uuid.uuid4().hex[:12], owner)
        with self._lock:
            unfinished = sum(1 for r in self._runs.values() if r.result is None)
            if unfinished >= self.max_unfinished:
                raise ApiError(429, f"{unfinished} agent runs are unfinished, the most this server takes at once; "
                                    "wait for one to finish (poll GET /v1/agent/runs/ID, answer its confirmations) "
                                    "and start again", code="too_many_runs", headers={"Retry-After": "5"})
            self._runs[run.id] = run
            finished = [r for r in self._runs.values() if r.result is not None]
            for old in finished[:max(0, len(finished) - KEEP_FINISHED)]:
                del self._runs[old.id]

        def go() -> None:
            try:
                result = work(run)
            except Exception as exc:  # noqa: BLE001 - the client hears why
                result = {"run_id": run.id, "status": "error", "answer": None, "steps": [],
                          "error": f"the agent run failed: {type(exc).__name__}: {exc}"}
            run.finish(result)

        threading.Thread(target=go, name=f"agent-run-{run.id}", daemon=True).start()
        return run

    def get(self, run_id: str, owner: str) -> LiveRun:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None or run.owner != owner:  # another key's run does not exist for this one
            raise ApiError(404, f"no agent run {run_id!r}", code="run_not_found")
        return run


def owner_of(headers) -> str:
    """Who a request comes from: a digest of its bearer token ("" without one)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()

