"""Answering requesters: each request gets exactly one recorded final or error answer.

``finish`` records the answer in the request log and queues it in the outbox in one
transaction; a second answer to the same request is refused there, so a race between, say, a
cloud answer and a cloud timeout cannot produce two. Deltas are progress only: published
directly at QoS 1, dropped while offline (the final answer carries the whole text).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from edge_os.errors import MqttError
from edge_os.mqtt import schema
from edge_os.mqtt.connection import Connection
from edge_os.mqtt.dedup import RequestLog, RequestRecord
from edge_os.mqtt.delivery import OutboxSender
from edge_os.mqtt.outbox import Kind, Outbox
from edge_os.mqtt.store import Store

log = logging.getLogger(__name__)


class Answers:
    def __init__(self, store: Store, requests: RequestLog, outbox: Outbox, sender: OutboxSender) -> None:
        self._store = store
        self._requests = requests
        self._outbox = outbox
        self._sender = sender
        self._connection: Connection | None = None
        self.resent = 0  # answers sent again because the requester asked again

    def attach(self, connection: Connection) -> None:
        self._connection = connection

    def finish(self, record: RequestRecord, payload: bytes) -> bool:
        """Record and queue the one answer to ``record``; False if it already had one."""
        with self._store.transaction():
            if not self._requests.mark_answered(record.key, payload):
                return False
            self._outbox.put(
                Kind.ANSWER,
                record.response_topic,
                payload,
                correlation=record.correlation,
                request_key=record.key,
            )
        self._sender.notify()
        return True

    def fail(self, record: RequestRecord, code: str, message: str) -> bool:
        log.info("request %s answered with error %s: %s", record.key, code, message)
        return self.finish(record, schema.error(code, message))

    def reject(self, record: RequestRecord, code: str, message: str) -> None:
        """Record a request that will not run together with its error answer (one transaction).

        The payload is not kept: it may be huge or not JSON, and only the answer is needed.
        """
        with self._store.transaction():
            if self._requests.admit(replace(record, payload=b"")):
                self.fail(record, code, message)

    def resend(self, record: RequestRecord) -> None:
        """Queue the recorded answer again unless it is still waiting in the outbox. An answer no
        longer kept (past the retention) is replaced by an ``already_answered`` error."""
        if self._outbox.holds_answer_for(record.key):
            return
        answer = record.answer
        if answer is None:
            answer = schema.error(
                "already_answered",
                "this request was answered earlier and its answer is no longer kept; "
                "ask again with new correlation data",
            )
        self._outbox.put(Kind.ANSWER, record.response_topic, answer,
                         correlation=record.correlation, request_key=record.key)
        self.resent += 1
        self._sender.notify()

    def unrecorded_error(self, response_topic: str, correlation: bytes | None, code: str, message: str) -> None:
        """An error to a request that is not recorded (no correlation data, or retained: nothing runs)."""
        log.info("request on %s rejected with %s: %s", response_topic, code, message)
        self._outbox.put(Kind.ANSWER, response_topic, schema.error(code, message), correlation=correlation)
        self._sender.notify()

    def delta(self, record: RequestRecord, seq: int, text: str) -> None:
        if self._connection is None:
            return
        try:
            self._connection.publish(record.response_topic, schema.delta(seq, text), correlation=record.correlation)
        except MqttError as exc:  # progress only: the final answer carries the whole text
            log.debug("delta %d of %s dropped: %s", seq, record.key, exc)
