"""Agent runs over MQTT, with confirmations asked and answered as messages (docs/mqtt.md).

```
edge-os/{device_id}/agent          agent requests   {"goal": "...", "max_steps": 6, "dry_run": false}
edge-os/{device_id}/agent/confirm  confirmations    {"id": "<confirmation id>", "answer": "yes" | "no"}
```

An agent request carries an MQTT v5 response topic and correlation data, like any request. While it
runs, an actuator the policy marks ``confirm`` publishes ``{"type": "confirm", "id", "tool",
"arguments", "timeout_s", "answer_on"}`` on that response topic and waits; a ``yes`` on the confirm
topic within the policy's ``confirm_timeout_s`` lets it go on the wire, anything else (``no``, silence)
refuses it. The run ends with ``{"type": "agent_result", ...}`` (the ``AgentResult``) on the same
topic; bad input gets ``{"type": "error", "code", "message"}`` and runs nothing.

Runs are serialised on one worker thread. A run is taken at most once per process (copies of a
request, by response topic and correlation, are not run again) and is not resumed after a restart:
an actuator is never driven by a stale goal; the requester asks again. Each run is on record in
the agent's audit log with its origin (``via: mqtt`` and the response topic), as HTTP runs are, so
runs can be listed after a restart (``edge-os audit runs``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from edge_os.mqtt import schema
from edge_os.mqtt.connection import Inbound
from edge_os.mqtt.delivery import OutboxSender
from edge_os.mqtt.outbox import Kind, Outbox
from edge_os.mqtt.topics import ROOT, publish_topic_problem

log = logging.getLogger(__name__)

_REMEMBERED = 1000  # request keys kept to recognise copies


def agent_topics(device_id: str) -> tuple[str, str]:
    """The topics a device with an agent takes messages from: requests, and confirmations."""
    return f"{ROOT}/{device_id}/agent", f"{ROOT}/{device_id}/agent/confirm"


@dataclass(frozen=True)
class _Job:
    response_topic: str
    correlation: bytes
    request: Any  # an edge_os.api.agent_runs.RunRequest


class _Pending:
    def __init__(self) -> None:
        self.answered = threading.Event()
        self.answer: str | None = None


class AgentDoor:
    """Takes agent requests and confirmations off the bridge's connection and runs the agent."""

    def __init__(self, runs, scheduler, device_id: str, outbox: Outbox, sender: OutboxSender) -> None:
        self._runs = runs  # an edge_os.api.agent_runs.AgentRuns
        self._scheduler = scheduler
        self.request_topic, self.confirm_topic = agent_topics(device_id)
        self._outbox, self._sender = outbox, sender
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._seen: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    @property
    def topics(self) -> tuple[str, str]:
        return self.request_topic, self.confirm_topic

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="mqtt-agent", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> list[threading.Thread]:
        """Refuse the confirmations waited for and stop after the run in progress. Returns the
        worker if it is still running after ``timeout`` (its run will still send its result)."""
        with self._lock:
            for pending in self._pending.values():
                pending.answered.set()
        self._jobs.put(None)
        if self._worker is None:
            return []
        self._worker.join(timeout)
        return [self._worker] if self._worker.is_alive() else []

    def handle(self, msg: Inbound) -> None:
        """One message on either topic (network thread: quick, never blocks on a run)."""
        if msg.topic == self.confirm_topic:
            self._confirmation(msg)
        else:
            self._request(msg)

    # -- intake -------------------------------------------------------------------------------

    def _request(self, msg: Inbound) -> None:
        from edge_os.api.agent_runs import parse_run
        from edge_os.api.errors import ApiError

        if not _answerable(msg):
            return
        if msg.retained:  # replayed at every connection: a stale goal must never drive an actuator
            self._send(msg.response_topic, schema.error("retained_request", schema.RETAINED_REQUEST), msg.correlation)
            return
        if not msg.correlation:
            self._send(msg.response_topic, schema.error(
                "missing_correlation_data", "set MQTT v5 correlation data: it identifies the agent request"), None)
            return
        key = (msg.response_topic, msg.correlation)
        with self._lock:
            if key in self._seen:
                log.info("agent request on %s seen before; not run again", msg.response_topic)
                return
            self._seen[key] = None
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        try:
            data = _json_object(msg.payload)
            http_only = sorted({"confirm", "stream", "background"} & set(data))
            if http_only:
                raise ValueError(f'"{http_only[0]}" is for HTTP; over MQTT each step and confirmation comes on the '
                                 f'response topic, confirmations answered on {self.confirm_topic}')
            request = parse_run(data)
        except (ValueError, ApiError) as exc:
            self._send(msg.response_topic, schema.error("invalid_request", str(exc)), msg.correlation)
            return
        self._jobs.put(_Job(msg.response_topic, msg.correlation, request))

    def _confirmation(self, msg: Inbound) -> None:
        where = msg.response_topic if _answerable(msg) else None
        try:
            data = _json_object(msg.payload)
            unknown = sorted(set(data) - {"id", "answer"})
            if unknown:
                raise ValueError(f"unknown field(s) {unknown}; a confirmation is {{\"id\": ID, \"answer\": \"yes\"}}")
            if not isinstance(data.get("id"), str) or data.get("answer") not in ("yes", "no"):
                raise ValueError('a confirmation is {"id": ID, "answer": "yes" | "no"}, with the id of the request')
        except ValueError as exc:
            self._reply_or_log(where, msg.correlation, "invalid_confirmation", str(exc))
            return
        with self._lock:
            pending = self._pending.get(data["id"])
            if pending is not None and not pending.answered.is_set():
                pending.answer = data["answer"]
                pending.answered.set()
                return
        self._reply_or_log(where, msg.correlation, "unknown_confirmation",
                           f"no confirmation {data['id'][:64]!r} is waiting (answered already, timed out, or never "
                           "asked); nothing was actuated by this message")

    # -- runs -----------------------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                result = self._runs.run(self._scheduler, job.request, confirm=self._asker(job),
                                        origin={"via": "mqtt", "requester": job.response_topic})
                payload = _dump({"type": "agent_result", **result})
            except Exception as exc:  # noqa: BLE001 - the requester hears why; the door keeps serving
                log.exception("agent run for %s failed", job.response_topic)
                payload = schema.error("internal", f"the agent run failed: {type(exc).__name__}: {exc}")
            self._send(job.response_topic, payload, job.correlation)

    def _asker(self, job: _Job):
        def confirm(question: str, timeout: float) -> bool | None:
            tool, _, rest = question.partition(" ")
            try:
                arguments = json.loads(rest.removesuffix(": allow?"))
            except ValueError:
                arguments = rest
            cid = uuid.uuid4().hex
            pending = _Pending()
            with self._lock:
                self._pending[cid] = pending
            try:
                # A question not delivered in time is dropped (and expires at the broker): the answer is no anyway.
                self._send(job.response_topic, _dump({
                    "type": "confirm", "id": cid, "tool": tool, "arguments": arguments, "timeout_s": timeout,
                    "answer_on": self.confirm_topic}), job.correlation,
                    response_topic=self.confirm_topic, expires=time.time() + timeout)
                answered = pending.answered.wait(timeout)
            finally:
                with self._lock:
                    self._pending.pop(cid, None)
            return pending.answer == "yes" if answered else None  # None: no answer in time

        return confirm

    def _send(self, topic: str, payload: bytes, correlation: bytes | None, *, response_topic: str | None = None,
              expires: float | None = None) -> None:
        self._outbox.put(Kind.ANSWER, topic, payload, correlation=correlation, response_topic=response_topic,
                         expires=expires)
        self._sender.notify()

    def _reply_or_log(self, topic: str | None, correlation: bytes | None, code: str, message: str) -> None:
        if topic is None:
            log.warning("confirmation refused (%s: %s); it has no response topic to say so", code, message)
            return
        self._send(topic, schema.error(code, message), correlation)


def _answerable(msg: Inbound) -> bool:
    problem = "it has no MQTT v5 response topic" if not msg.response_topic else publish_topic_problem(
        msg.response_topic)
    if problem is not None:
        log.warning("dropped a message on %s: %s", msg.topic, problem)
    return problem is None


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _json_object(payload: bytes) -> dict:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"the payload is not UTF-8 JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise ValueError("the payload must be a JSON object")
    return data
