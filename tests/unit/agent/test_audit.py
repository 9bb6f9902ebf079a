"""The hash-chained audit log: an intact log verifies; an edited, deleted, reordered, inserted or cut-off
entry is found, through the library and through the real `edge-os audit verify` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_os.agent import AuditLog
from tests.bounded_cli import assert_one_line_error, run_edge_os


def filled(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append("actuation", {"actuator": "fan", "value": 10 * i, "ok": True}, run="r1")
    return log


def rewrite(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in change(lines)))


def edit_value(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["data"]["value"] = 255
    return lines[:2] + [json.dumps(entry, sort_keys=True)] + lines[3:]


TAMPERING = {
    "edited": (edit_value, "entry 3 was changed"),
    "deleted": (lambda lines: lines[:1] + lines[2:], "entry 3 where entry 2 should be"),
    "reordered": (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "entry 3 where entry 2 should be"),
    "cut at the end": (lambda lines: lines[:-1], "the log ends at entry 4 but 5 were written"),
    "cut at the start": (lambda lines: lines[1:], "entry 2 where entry 1 should be"),
    "garbage inserted": (lambda lines: lines[:2] + ["{}"] + lines[2:], "not an audit entry"),
}


def test_an_intact_log_verifies(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit.jsonl")
    assert log.verify() == []
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampering_is_detected(tmp_path: Path, how: str) -> None:
    log = filled(tmp_path / "audit.jsonl")
    change, message = TAMPERING[how]
    rewrite(log.path, change)
    problems = log.verify()
    assert problems, how
    assert any(message in p.message for p in problems), [p.message for p in problems]


def test_a_re_hashed_edit_still_breaks_the_chain(tmp_path: Path) -> None:
    """Recomputing the edited entry's own hash does not help: the next entry points at the old one."""
    from edge_os.agent.audit import _digest

    log = filled(tmp_path / "audit.jsonl")

    def forge(lines: list[str]) -> list[str]:
        entry = json.loads(lines[2])
        entry["data"]["value"] = 255
        entry["hash"] = _digest(entry)
        return lines[:2] + [json.dumps(entry)] + lines[3:]

    rewrite(log.path, forge)
    assert [p.message for p in log.verify()] == ["entry 4 does not follow the entry before it in the chain"]


def test_retention_keeps_the_chain_verifiable(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit.jsonl", 10)
    pruned = AuditLog(log.path, max_entries=4)
    assert pruned.prune() == 7
    entries = log.entries()
    assert [e["seq"] for e in entries] == [8, 9, 10, 11] and entries[-1]["kind"] == "retention"
    assert entries[-1]["data"] == {"dropped": 7, "through_seq": 7}
    assert log.verify() == []
    rewrite(log.path, lambda lines: lines[1:])  # deleting the oldest kept entry is still found
    assert log.verify()


def test_retention_by_age(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit.jsonl", 3)
    newest = log.entries()[-1]["ts"]
    assert AuditLog(log.path, retention_days=1).prune(now=newest + 0.5 * 86400) == 0
    assert AuditLog(log.path, retention_days=1).prune(now=newest + 2 * 86400) == 3
    assert [e["kind"] for e in log.entries()] == ["retention"] and log.verify() == []


@pytest.mark.parametrize("how", ["edited", "deleted", "reordered"])
def test_the_verify_command(tmp_path: Path, how: str) -> None:
    log = filled(tmp_path / "audit.jsonl")
    intact = run_edge_os("audit", "verify", "--audit", str(log.path))
    assert intact.returncode == 0 and "5 entries, chain intact" in intact.stdout
    rewrite(log.path, TAMPERING[how][0])
    broken = run_edge_os("audit", "verify", "--audit", str(log.path))
    assert_one_line_error(broken, "has been tampered with or damaged", TAMPERING[how][1])
    assert TAMPERING[how][1] in broken.stdout


def test_the_show_command(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit.jsonl", 3)
    shown = run_edge_os("audit", "show", "--audit", str(log.path), "--json", "--last", "2")
    assert shown.returncode == 0
    assert [json.loads(line)["seq"] for line in shown.stdout.splitlines()] == [2, 3]
    text = run_edge_os("audit", "show", "--audit", str(log.path))
    assert len(text.stdout.splitlines()) == 3 and '"actuator":"fan"' in text.stdout
    missing = run_edge_os("audit", "show", "--audit", str(tmp_path / "nope.jsonl"))
    assert_one_line_error(missing, "there is no audit log at")


@pytest.mark.parametrize("command", ["show", "runs"])
def test_listings_say_when_they_skipped_damaged_lines(tmp_path: Path, command: str) -> None:
    log = filled(tmp_path / "audit.jsonl", 3)
    assert "warning" not in run_edge_os("audit", command, "--audit", str(log.path)).stderr
    rewrite(log.path, lambda lines: lines[:1] + ["{half an entr", "[1, 2]"] + lines[1:])
    listed = run_edge_os("audit", command, "--audit", str(log.path))
    assert listed.returncode == 0
    assert "2 line(s)" in listed.stderr and "edge-os audit verify" in listed.stderr
    assert log.entries() and log.unreadable_lines == 2
