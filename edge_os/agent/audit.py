"""An append-only, hash-chained audit log of what the agent did (JSON Lines).

Each entry is one line: ``{"seq", "ts", "run", "kind", "data", "prev", "hash"}`` where ``hash`` is
the SHA-256 of the entry's other fields (canonical JSON) and ``prev`` the previous entry's hash.
An edited entry no longer matches its hash; a deleted or moved one breaks the sequence and the
chain. A sidecar file ``<log>.head`` holds the first and last entry's sequence number and hashes,
so cutting entries off either end is detected too. Retention drops the oldest entries and moves
the head's anchor forward, writing a ``retention`` entry that says what was dropped.

Kinds: ``run`` (a goal started; a run served over HTTP or MQTT also says ``via`` and
``requester``), ``tool_call``, ``actuation``, ``refusal``, ``confirmation``, ``dry_run``,
``answer``, ``cloud_fallback``. ``runs()`` lists the runs the log holds, however they were started.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _digest(entry: dict[str, Any]) -> str:
    body = {k: entry[k] for k in ("seq", "ts", "run", "kind", "data", "prev")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


class AuditLog:
    """The log at ``path``; ``max_entries``/``retention_days`` bound it (applied by ``prune``)."""

    def __init__(self, path: str | Path, *, max_entries: int | None = None, retention_days: float | None = None):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.max_entries = max_entries
        self.retention_days = retention_days
        self.unreadable_lines = 0  # lines the last ``entries()`` skipped

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _head(self) -> dict[str, Any]:
        try:
            return json.loads(self.head_path.read_text())
        except FileNotFoundError:
            return {"first_seq": 1, "anchor": GENESIS, "last_seq": 0, "last_hash": GENESIS}

    def _write_head(self, head: dict[str, Any]) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        tmp.write_text(json.dumps(head))
        os.replace(tmp, self.head_path)

    def append(self, kind: str, data: dict[str, Any], run: str = "") -> dict[str, Any]:
        """Add one entry (durably: fsynced before this returns) and return it."""
        with self._locked():
            return self._append_locked(kind, data, run)

    def _append_locked(self, kind: str, data: dict[str, Any], run: str) -> dict[str, Any]:
        head = self._head()
        entry = {"seq": head["last_seq"] + 1, "ts": time.time(), "run": run, "kind": kind, "data": data,
                 "prev": head["last_hash"]}
        entry["hash"] = _digest(entry)
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._write_head({**head, "last_seq": entry["seq"], "last_hash": entry["hash"]})
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first. Lines that are not JSON objects are skipped and counted in
        ``unreadable_lines``; ``verify`` names them."""
        out = []
        self.unreadable_lines = 0
        if not self.path.exists():
            return out
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                out.append(entry)
            else:
                self.unreadable_lines += 1
        return out

    def runs(self) -> list[dict[str, Any]]:
        """One summary per run the log holds, oldest first: ``run`` (its id), ``started``, ``goal``,
        ``via`` (``http``, ``mqtt``, or ``local``: ``edge-os agent`` or the Python API), ``requester`` (a
        digest of the HTTP API key, the MQTT response topic), ``status`` and ``finished`` (None
        while it runs, or when it was cut short)."""
        runs: dict[str, dict[str, Any]] = {}
        for entry in self.entries():
            run_id, data = entry.get("run"), entry.get("data")
            if not run_id or not isinstance(data, dict):
                continue
            if entry.get("kind") == "run" and run_id not in runs:
                runs[run_id] = {"run": run_id, "started": entry.get("ts"), "goal": data.get("goal"),
                                "via": data.get("via", "local"), "requester": data.get("requester"),
                                "status": None, "finished": None}
            elif run_id in runs and entry.get("kind") == "answer":
                runs[run_id].update(status=data.get("status"), finished=entry.get("ts"))
        return list(runs.values())

    def verify(self) -> list[Problem]:
        """Every break in the chain; empty when the log is intact."""
        head = self._head()
        problems: list[Problem] = []
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        expect_seq, expect_prev = head["first_seq"], head["anchor"]
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                seq, prev, stated = entry["seq"], entry["prev"], entry["hash"]
                actual = _digest(entry)
            except (json.JSONDecodeError, KeyError, TypeError):
                problems.append(Problem(number, "not an audit entry (the line was damaged or inserted)"))
                continue
            if actual != stated:
                problems.append(Problem(number, f"entry {seq} was changed: its content does not match its hash"))
            if seq != expect_seq:
                problems.append(Problem(number, f"entry {seq} where entry {expect_seq} should be "
                                                "(entries were deleted, inserted or reordered)"))
            elif prev != expect_prev:
                problems.append(Problem(number, f"entry {seq} does not follow the entry before it in the chain"))
            expect_seq, expect_prev = (seq + 1 if isinstance(seq, int) else expect_seq + 1), stated
        if expect_seq - 1 != head["last_seq"] or (lines and expect_prev != head["last_hash"]):
            problems.append(Problem(len(lines), f"the log ends at entry {expect_seq - 1} but {head['last_seq']} "
                                                "were written (entries at the end were deleted or replaced)"))
        return problems

    def prune(self, now: float | None = None) -> int:
        """Apply retention: drop the oldest entries beyond ``max_entries`` or older than
        ``retention_days``; returns how many were dropped (a ``retention`` entry records it)."""
        if self.max_entries is None and self.retention_days is None:
            return 0
        now = time.time() if now is None else now
        with self._locked():
            entries = self.entries()
            keep = len(entries)
            if self.max_entries is not None:
                keep = min(keep, max(self.max_entries - 1, 0))  # room for the retention entry
            if self.retention_days is not None:
                cutoff = now - self.retention_days * 86400
                keep = min(keep, sum(1 for e in entries if e.get("ts", 0) >= cutoff))
            dropped = len(entries) - keep
            if dropped <= 0:
                return 0
            kept = entries[dropped:]
            head = self._head()
            anchor = entries[dropped - 1]["hash"]
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                for entry in kept:
                    f.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._write_head({**head, "first_seq": entries[dropped - 1]["seq"] + 1, "anchor": anchor})
            self._append_locked("retention", {"dropped": dropped, "through_seq": entries[dropped - 1]["seq"]}, "")
            return dropped
