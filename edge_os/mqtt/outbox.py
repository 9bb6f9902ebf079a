"""The durable outbox: messages waiting to be published, kept in SQLite until the broker acks.

Answers, cloud requests and telemetry are written here first and deleted only on PUBACK, so a
broker outage or a crash loses none of them. Telemetry is capped (oldest dropped first) so a
long outage cannot fill the disk; answers are never dropped, except a message no broker can ever
take (a bad topic, a broker's refusal): it moves to the dead letters (its topic, kind and why, not
its payload) so it cannot hold up the rows after it.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from edge_os.mqtt.store import Store
from edge_os.mqtt.topics import InvalidTopic, publish_topic_problem

_DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    correlation BLOB,
    response_topic TEXT,
    expires REAL,             -- wall-clock time after which it is dropped unsent
    request_key TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_request ON outbox (request_key);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,   -- the outbox id it had
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,      -- cut to 200 characters
    request_key TEXT,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
"""
_MAX_DEAD_LETTERS = 1000


class Kind(str, enum.Enum):
    ANSWER = "answer"  # a final or error to a requester
    CLOUD = "cloud"  # a request handed to the cloud worker
    TELEMETRY = "telemetry"
    EVENT = "event"  # a pipeline's event (edge_os.pipelines)


@dataclass(frozen=True)
class OutMessage:
    id: int
    kind: Kind
    topic: str
    payload: bytes
    correlation: bytes | None = None
    response_topic: str | None = None
    expires: float | None = None
    request_key: str | None = None


class Outbox:
    def __init__(self, store: Store, max_telemetry: int = 1000) -> None:
        self._store = store
        self._max_telemetry = max_telemetry
        store.ensure(_DDL)

    def put(
        self,
        kind: Kind,
        topic: str,
        payload: bytes,
        *,
        correlation: bytes | None = None,
        response_topic: str | None = None,
        expires: float | None = None,
        request_key: str | None = None,
    ) -> int:
        """Queue a message durably; returns its id (ids give the sending order).

        Raises ``InvalidTopic`` (nothing stored) for a topic no broker would take.
        """
        for value in (topic,) if response_topic is None else (topic, response_topic):
            problem = publish_topic_problem(value)
            if problem is not None:
                raise InvalidTopic(f"not queueing a message for {str(value)[:80]!r}: {problem}")
        with self._store.transaction() as db:
            cur = db.execute(
                "INSERT INTO outbox (kind, topic, payload, correlation, response_topic, expires, request_key, created)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (kind.value, topic, payload, correlation, response_topic, expires, request_key, time.time()),
            )
            if kind is Kind.TELEMETRY:
                db.execute(
                    "DELETE FROM outbox WHERE kind = ? AND id <= (SELECT id FROM outbox WHERE kind = ?"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (kind.value, kind.value, self._max_telemetry),
                )
            return int(cur.lastrowid)

    def after(self, last_id: int, limit: int) -> list[OutMessage]:
        """Up to ``limit`` messages with id > ``last_id``, in order."""
        rows = self._store.rows(
            "SELECT id, kind, topic, payload, correlation, response_topic, expires, request_key FROM outbox"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        return [
            OutMessage(i, Kind(k), t, bytes(p), None if c is None else bytes(c), r, e, q)
            for i, k, t, p, c, r, e, q in rows
        ]

    def remove(self, message_id: int) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def dead_letter(self, message: OutMessage, reason: str) -> None:
        """Move ``message`` out of the queue for good, keeping a record of what and why."""
        with self._store.transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (message.id,))
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (id, kind, topic, request_key, reason, created)"
                " VALUES (?,?,?,?,?,?)",
                (message.id, message.kind.value, message.topic[:200], message.request_key, reason, time.time()),
            )
            db.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (_MAX_DEAD_LETTERS,),
            )

    def dead_letters(self) -> int:
        """How many dead letters are recorded (the newest 1000 are kept)."""
        return int(self._store.rows("SELECT COUNT(*) FROM dead_letters")[0][0])

    def holds_answer_for(self, request_key: str) -> bool:
        """Whether an answer to this request is still waiting to be sent."""
        rows = self._store.rows(
            "SELECT 1 FROM outbox WHERE request_key = ? AND kind = ? LIMIT 1", (request_key, Kind.ANSWER.value)
        )
        return bool(rows)

    def __len__(self) -> int:
        return int(self._store.rows("SELECT COUNT(*) FROM outbox")[0][0])
