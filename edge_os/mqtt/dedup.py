"""The request log: every request the bridge has accepted, keyed by its correlation data.

It makes redelivery harmless: a request whose key is already known is never run again. Once
answered, the request's payload (the prompt) is dropped at once; the answer is kept for a while
(``answer_ttl``) so a requester that asks again gets the same answer, and the key alone for
longer (``ttl``), which is all deduplication needs. Requests still ``accepted`` when the process
stops are resumed on the next start.
"""

from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass

from edge_os.mqtt.store import Store

_DDL = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    response_topic TEXT NOT NULL,
    correlation BLOB NOT NULL,
    payload BLOB NOT NULL,
    deadline REAL,              -- wall-clock time.time() after which it must not run
    state TEXT NOT NULL,
    answer BLOB,                -- the final or error payload once answered
    fallback_code TEXT,
    fallback_reason TEXT,
    cloud_deadline REAL,
    received REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_state ON requests (state, updated);
"""
_COLUMNS = (
    "key, response_topic, correlation, payload, deadline, state, answer, fallback_code, fallback_reason, cloud_deadline"
)


class State(str, enum.Enum):
    ACCEPTED = "accepted"  # persisted, waiting for or running on the scheduler
    CLOUD = "cloud"  # handed to the cloud worker, waiting for its answer
    ANSWERED = "answered"  # a final or error answer is recorded (and queued in the outbox)


@dataclass(frozen=True)
class RequestRecord:
    key: str
    response_topic: str
    correlation: bytes
    payload: bytes
    deadline: float | None
    state: State
    answer: bytes | None = None
    fallback_code: str | None = None
    fallback_reason: str | None = None
    cloud_deadline: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.deadline is not None and (now or time.time()) >= self.deadline


def request_key(response_topic: str, correlation: bytes) -> str:
    """Correlation data scoped by response topic: two requesters may both number from 1."""
    return hashlib.sha256(response_topic.encode() + b"\0" + correlation).hexdigest()[:32]


class RequestLog:
    def __init__(self, store: Store) -> None:
        self._store = store
        store.ensure(_DDL)

    def admit(self, record: RequestRecord) -> bool:
        """Insert ``record`` if its key is new; return whether it was new."""
        now = time.time()
        with self._store.transaction() as db:
            cur = db.execute(
                f"INSERT OR IGNORE INTO requests ({_COLUMNS}, received, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.key,
                    record.response_topic,
                    record.correlation,
                    record.payload,
                    record.deadline,
                    record.state.value,
                    record.answer,
                    None,
                    None,
                    None,
                    now,
                    now,
                ),
            )
            return cur.rowcount == 1

    def get(self, key: str) -> RequestRecord | None:
        rows = self._store.rows(f"SELECT {_COLUMNS} FROM requests WHERE key = ?", (key,))
        return _record(rows[0]) if rows else None

    def in_state(self, state: State) -> list[RequestRecord]:
        """Records in ``state``, oldest first."""
        rows = self._store.rows(f"SELECT {_COLUMNS} FROM requests WHERE state = ? ORDER BY received", (state.value,))
        return [_record(r) for r in rows]

    def mark_cloud(self, key: str, code: str, reason: str, cloud_deadline: float) -> bool:
        """Move an accepted request to the cloud; False if it was not ``accepted``."""
        with self._store.transaction() as db:
            cur = db.execute(
                "UPDATE requests SET state = ?, fallback_code = ?, fallback_reason = ?, cloud_deadline = ?,"
                " updated = ? WHERE key = ? AND state = ?",
                (State.CLOUD.value, code, reason, cloud_deadline, time.time(), key, State.ACCEPTED.value),
            )
            return cur.rowcount == 1

    def mark_answered(self, key: str, answer: bytes) -> bool:
        """Record the answer and drop the request's payload; False if the request was already
        answered (or is unknown)."""
        with self._store.transaction() as db:
            cur = db.execute(
                "UPDATE requests SET state = ?, answer = ?, payload = x'', updated = ? WHERE key = ? AND state != ?",
                (State.ANSWERED.value, answer, time.time(), key, State.ANSWERED.value),
            )
            return cur.rowcount == 1

    def prune(self, older_than_s: float, answers_older_than_s: float | None = None) -> int:
        """Forget answered requests answered more than ``older_than_s`` ago, and the answers
        (keeping the key) of those answered more than ``answers_older_than_s`` ago. Returns how
        many requests were forgotten."""
        now = time.time()
        with self._store.transaction() as db:
            if answers_older_than_s is not None:
                db.execute(
                    "UPDATE requests SET answer = NULL WHERE state = ? AND answer IS NOT NULL AND updated < ?",
                    (State.ANSWERED.value, now - answers_older_than_s),
                )
            cur = db.execute(
                "DELETE FROM requests WHERE state = ? AND updated < ?",
                (State.ANSWERED.value, now - older_than_s),
            )
            return cur.rowcount

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in State}
        counts.update(dict(self._store.rows("SELECT state, COUNT(*) FROM requests GROUP BY state")))
        return counts


def _record(row: tuple) -> RequestRecord:
    key, topic, corr, payload, deadline, state, answer, code, reason, cloud_deadline = row
    return RequestRecord(
        key, topic, bytes(corr), bytes(payload), deadline, State(state), answer, code, reason, cloud_deadline
    )
