"""The durable outbox: messages waiting to be published, kept in SQLite until the broker acks.

Answers, cloud requests and telemetry are written here first and deleted only on PUBACK, so a
broker outage or a crash loses none of them. Telemetry is capped (oldest dropped first) so a
long outage cannot fill the disk; answers are never dropped.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from edge_os.mqtt.store import Store

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
"""


class Kind(str, enum.Enum):
    ANSWER = "answer"  # a final or error to a requester
    CLOUD = "cloud"  # a request handed to the cloud worker
    TELEMETRY = "telemetry"


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
        """Queue a message durably; returns its id (ids give the sending order)."""
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

    def holds_answer_for(self, request_key: str) -> bool:
        """Whether an answer to this request is still waiting to be sent."""
        rows = self._store.rows(
            "SELECT 1 FROM outbox WHERE request_key = ? AND kind = ? LIMIT 1", (request_key, Kind.ANSWER.value)
        )
        return bool(rows)

    def __len__(self) -> int:
        return int(self._store.rows("SELECT COUNT(*) FROM outbox")[0][0])
