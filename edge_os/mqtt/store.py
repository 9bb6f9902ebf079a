"""The bridge's SQLite file: one connection, one lock, and transactions that span tables.

The outbox and the request log live in the same file so that "record the answer" and "queue it
for sending" commit together: after a crash either both happened or neither did. The file holds
prompts and answers, so it is private: 0600 in a 0700 directory (SQLite gives its -wal and -shm
files the database's mode), and what it forgets is overwritten (``secure_delete``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Store:
    """A thread-safe SQLite database in WAL mode with ``synchronous=FULL`` (survives power loss)."""

    def __init__(self, path: Path) -> None:
        _private_file(path)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")  # a dropped prompt is overwritten, not left in a free page
        self._lock = threading.RLock()
        self._depth = 0

    def ensure(self, ddl: str) -> None:
        """Create tables and indexes if missing (``ddl`` uses ``IF NOT EXISTS``)."""
        with self._lock:
            self._db.executescript(ddl)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit everything done inside at once; nested uses join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def checkpoint(self) -> None:
        """Move the WAL into the database and truncate it, so forgotten rows leave the WAL too."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _private_file(path: Path) -> None:
    """Create ``path`` (and its directory) readable by this user only; tighten existing ones."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists():
            os.chmod(existing, 0o600)
