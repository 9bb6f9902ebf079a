"""End to end with the real default model: `edge-os serve --mqtt` on a real broker, asked with
the stock mosquitto clients.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.mqtt_cli import ask_with_mosquitto_clients
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def served_device(mosquitto: Mosquitto, tmp_path: Path, default_package: Path):
    """`edge-os serve --mqtt URL` with the bundled default model, online on the broker."""
    watcher = Requester(mosquitto.port, "e2e-watcher", subscribe=("edge-os/e2e/status",))
    socket_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))  # Unix socket paths are short
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", str(default_package), "--mqtt", mosquitto.url,
         "--device-id", "e2e", "--mqtt-state-dir", str(tmp_path / "state"), "--socket", str(socket_dir / "s.sock")],
        env=run_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def online_or_exited() -> bool:
        statuses = watcher.on_topic("edge-os/e2e/status")
        return proc.poll() is not None or any(s["state"] == "online" for s in statuses)

    try:
        wait_until(
            online_or_exited,
            600,  # the first run packs the default model
            interval=0.5,
            what="edge-os serve online",
        )
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        watcher.close()


def test_mosquitto_pub_asks_the_default_model(served_device, mosquitto: Mosquitto):
    question = {"prompt": "What is the capital of France?", "max_tokens": 24, "temperature": 0}
    [(corr, first)] = ask_with_mosquitto_clients(mosquitto.port, "edge-os/e2e/req", question, "e2e-1", timeout=120)
    assert corr == "e2e-1"
    assert first["type"] == "final", first
    assert first["served_by"] == "local"
    assert first["finish_reason"] in ("stop", "length")
    assert first["text"].strip() and first["usage"]["completion_tokens"] >= 1
    # Greedy decoding of the same question must give the same text on a second, separate request.
    [(_, second)] = ask_with_mosquitto_clients(mosquitto.port, "edge-os/e2e/req", question, "e2e-2", timeout=120)
    assert second["text"] == first["text"]


def test_the_default_model_streams_over_mqtt(served_device, mosquitto: Mosquitto):
    question = {"prompt": "Name one colour.", "max_tokens": 8, "temperature": 0, "stream": True}
    requester = Requester(mosquitto.port, "e2e-stream")
    requester.ask(question, b"s", topic="edge-os/e2e/req")
    final = requester.final(b"s", timeout=120)
    deltas = sorted(requester.answers(b"s", "delta"), key=lambda d: d["seq"])
    assert final["type"] == "final" and deltas
    assert "".join(d["text"] for d in deltas) == final["text"]
    requester.close()
