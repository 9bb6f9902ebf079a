"""Hostile MQTT input against a real broker and a real service process (issue 18, items 1, 6, 10).

One request with a response topic no broker accepts (``x/#``) used to stay first in the outbox:
paho raised on it at every attempt, so the device answered nobody and sent no telemetry, across
restarts, and sent to ``edge-os/all/req`` it silenced every device at once.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from edge_os.mqtt.topics import status_topic, telemetry_topic
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.integration.test_mqtt_service_crash import Service
from tests.waiting import wait_until

DEVICE = "hard1"
BAD_TOPICS = ("x/#", "a/+/b", "$SYS/answers", "#")


def _service(mosquitto: Mosquitto, tmp_path: Path) -> Service:
    service = Service(mosquitto, tmp_path, DEVICE, token_delay=0.0)
    service.args[service.args.index("--telemetry-interval") + 1] = "0.3"
    return service


def _telemetry_after(requester: Requester, count: int, timeout: float = 10) -> None:
    wait_until(
        lambda: len(requester.on_topic(telemetry_topic(DEVICE))) >= count, timeout, what=f"{count} telemetry reports"
    )


def _start_online(service: Service, requester: Requester) -> None:
    """Start the service and wait for its retained ``online`` (the requester subscribes to status)."""
    before = len([b for b in requester.on_topic(status_topic(DEVICE)) if b.get("state") == "online"])
    service.start()
    wait_until(
        lambda: len([b for b in requester.on_topic(status_topic(DEVICE)) if b.get("state") == "online"]) > before,
        20,
        what="the service online",
    )


def _state_db(service: Service) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(f"file:{service.state_dir / 'bridge.sqlite3'}?mode=ro", uri=True, timeout=5))


@pytest.fixture
def service(mosquitto: Mosquitto, tmp_path: Path):
    svc = _service(mosquitto, tmp_path)
    yield svc
    svc.stop()


def test_a_bad_response_topic_silences_nothing_even_after_a_restart(
    mosquitto: Mosquitto, service: Service, tmp_path: Path
) -> None:
    requester = Requester(mosquitto.port, "hard", subscribe=(telemetry_topic(DEVICE), status_topic(DEVICE)))
    try:
        _start_online(service, requester)
        for i, topic in enumerate(BAD_TOPICS):
            for request_topic in (f"edge-os/{DEVICE}/req", "edge-os/all/req"):
                requester.ask({"prompt": "poison"}, f"bad-{i}-{request_topic}".encode(), topic=request_topic,
                              response_topic=topic)  # fmt: skip
        requester.ask({"prompt": "hello there"}, b"good-1", topic=f"edge-os/{DEVICE}/req")
        assert requester.final(b"good-1")["type"] == "final"
        seen = len(requester.on_topic(telemetry_topic(DEVICE)))
        _telemetry_after(requester, seen + 2)
        requester.ask({"prompt": "to everyone"}, b"good-2", topic="edge-os/all/req")
        assert requester.final(b"good-2")["type"] == "final"

        log = service.log.read_text()
        assert log.count("cannot be published to") == 2 * len(BAD_TOPICS), log
        with _state_db(service) as db:  # nothing of the bad requests was stored
            assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 2

            def answers_waiting() -> int:
                rows = db.execute("SELECT COUNT(*) FROM outbox WHERE topic != ?", (telemetry_topic(DEVICE),))
                return rows.fetchone()[0]
            # good-2's answer leaves the outbox when the broker's PUBACK arrives, which may be just
            # after the requester got it; a poisoned answer would never leave.
            wait_until(lambda: answers_waiting() == 0, 20, what="the outbox to hold no answers")

        service.stop()
        service.start()
        requester.ask({"prompt": "after the restart"}, b"good-3", topic=f"edge-os/{DEVICE}/req")
        assert requester.final(b"good-3", timeout=20)["type"] == "final"
        seen = len(requester.on_topic(telemetry_topic(DEVICE)))
        _telemetry_after(requester, seen + 2)
    finally:
        requester.close()
    runs = service.runs()
    assert len(runs) == 3 and set(runs.values()) == {1}, runs  # the three good requests, once each


def test_an_undeliverable_row_left_in_the_outbox_is_dead_lettered(
    mosquitto: Mosquitto, service: Service, tmp_path: Path
) -> None:
    """A state file written before the fix holds a poisoned answer first in its outbox: it is
    moved to the dead letters with a log line, and the rows behind it are delivered."""
    requester = Requester(mosquitto.port, "dead", subscribe=(telemetry_topic(DEVICE), status_topic(DEVICE)))
    try:
        _start_online(service, requester)
        requester.ask({"prompt": "first"}, b"one", topic=f"edge-os/{DEVICE}/req")
        requester.final(b"one", timeout=20)
        service.stop()
        db = sqlite3.connect(service.state_dir / "bridge.sqlite3")
        with db:
            for topic in ("x/#", "", "$SYS/x", "a\0b"):
                db.execute(
                    "INSERT INTO outbox (kind, topic, payload, created) VALUES ('answer', ?, x'7b7d', ?)",
                    (topic, time.time()),
                )
            db.execute(
                "INSERT INTO outbox (kind, topic, payload, correlation, created) VALUES ('answer', ?, ?, ?, ?)",
                (requester.response_topic, b'{"type":"final","text":"queued behind"}', b"behind", time.time()),
            )
        db.close()
        service.start()
        body = wait_until(lambda: requester.answers(b"behind"), 20, what="the row behind the poisoned ones")[0]
        assert body["text"] == "queued behind"
        seen = len(requester.on_topic(telemetry_topic(DEVICE)))
        _telemetry_after(requester, seen + 2)
        with _state_db(service) as ro:
            assert ro.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 4
            assert ro.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'answer'").fetchone()[0] == 0
        assert service.log.read_text().count("can never be delivered") == 4
    finally:
        requester.close()


def test_state_is_private_and_prompts_are_dropped_once_answered(
    mosquitto: Mosquitto, service: Service, tmp_path: Path
) -> None:
    old_umask = os.umask(0o022)  # the usual umask: files would be 0644, directories 0755
    try:
        requester = Requester(mosquitto.port, "private", subscribe=(status_topic(DEVICE),))
        try:
            _start_online(service, requester)
            requester.ask({"prompt": "my secret prompt"}, b"s-1", topic=f"edge-os/{DEVICE}/req")
            assert requester.final(b"s-1", timeout=20)["type"] == "final"
        finally:
            requester.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(service.state_dir.stat().st_mode) == 0o700
    files = sorted(service.state_dir.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), [
        (f.name, oct(f.stat().st_mode)) for f in files
    ]
    with _state_db(service) as db:
        payload, answer = db.execute("SELECT payload, answer FROM requests").fetchone()
    assert bytes(payload) == b"" and b"final" in bytes(answer)
    service.stop()
    raw = b"".join(f.read_bytes() for f in service.state_dir.iterdir())
    assert b"my secret prompt" not in raw


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"[" * 30_000 + b"]" * 30_000, "invalid_json"),
        (b'{"prompt": "x", "max_tokens": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b'{"prompt": "x", "temperature": ' + b"9" * 400 + b"}", "invalid_request"),
        (b'{"prompt": "x", "temperature": NaN}', "invalid_json"),
        ('{"prompt": "hello"}'.encode("utf-16"), "invalid_encoding"),
        ('{"prompt": "hello"}'.encode("utf-32"), "invalid_encoding"),
        (b'{"prompt": "caf\xe9"}', "invalid_encoding"),
    ],
    ids=["nested-30k", "int-5000-digits", "int-400-digits", "nan", "utf-16", "utf-32", "latin-1"],
)
def test_malformed_payloads_get_a_precise_code(
    mosquitto: Mosquitto, service: Service, payload: bytes, code: str
) -> None:
    requester = Requester(mosquitto.port, "codes", subscribe=(status_topic(DEVICE),))
    try:
        _start_online(service, requester)
        requester.ask(payload, b"bad", topic=f"edge-os/{DEVICE}/req")
        answer = requester.final(b"bad", timeout=20)
        assert (answer["type"], answer["code"]) == ("error", code), answer
        assert "\n" not in answer["message"] and len(answer["message"]) < 300
        requester.ask({"prompt": "still fine"}, b"ok", topic=f"edge-os/{DEVICE}/req")
        assert requester.final(b"ok")["type"] == "final"
    finally:
        requester.close()


@pytest.mark.parametrize("device_id", ["..", ".", "a/b", "+", "#", "$x", "a\nb", "back\\slash"])
def test_a_device_id_that_is_not_one_safe_name_is_refused(mosquitto: Mosquitto, tmp_path: Path, device_id: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = run_env() | {"EDGE_OS_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--mqtt", mosquitto.url, "--device-id", device_id,
         "--models", str(tmp_path / "no-such-package")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("edge-os: error: device id") and result.stderr.count("\n") == 1, result.stderr
    assert list(home.rglob("*.sqlite3")) == [] and list(tmp_path.glob("*.sqlite3")) == []
