"""`edge-os serve` as a user starts it: the model it serves by default, and how quickly a request
for a model it does not have is answered. Real processes, a real mosquitto broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.integration.test_cli import assert_one_line_error, edge_os
from tests.waiting import wait_until

EDGE_OS = str(Path(sys.executable).parent / "edge-os")


def start_serve(tmp_path: Path, mosquitto: Mosquitto, *args: str, env: dict | None = None, timeout: float = 120):
    """`edge-os serve ARGS --mqtt URL --device-id kitchen`, returned once it is online."""
    watcher = Requester(mosquitto.port, "watcher", subscribe=("edge-os/kitchen/status",))
    socket_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))  # Unix socket paths are short
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [EDGE_OS, "serve", *args, "--mqtt", mosquitto.url, "--device-id", "kitchen",
         "--mqtt-state-dir", str(tmp_path / "state"), "--socket", str(socket_dir / "s.sock")],
        env={**run_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(
            lambda: proc.poll() is not None
            or any(s["state"] == "online" for s in watcher.on_topic("edge-os/kitchen/status")),
            timeout, interval=0.2, what="edge-os serve online",
        )  # fmt: skip
    finally:
        watcher.close()
    assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
    return proc, log


def stop(proc, log) -> None:
    proc.terminate()
    assert proc.wait(30) == 0
    log.close()


def test_a_model_the_device_lacks_is_answered_at_once_naming_the_ones_it_has(tmp_path, mosquitto, tiny_package):
    proc, log = start_serve(tmp_path, mosquitto, "--models", str(tiny_package))
    requester = Requester(mosquitto.port, "asker")
    try:
        asked = time.monotonic()
        requester.ask({"prompt": "hi", "model": "llama-70b"}, b"q1", topic="edge-os/kitchen/req")
        answer = requester.final(b"q1", timeout=60)
        waited = time.monotonic() - asked
        assert answer["type"] == "error" and answer["code"] == "model_absent", answer
        name = json.loads((tiny_package / "manifest.json").read_text())["name"]
        assert f"model 'llama-70b' is not on this device; it has {name}" in answer["message"], answer
        assert "None" not in answer["message"]
        assert waited < 60  # the cloud timeout (120 s) was not waited for: no cloud is configured
    finally:
        requester.close()
        stop(proc, log)


def test_a_memory_budget_too_small_for_any_model_is_refused_at_start(tiny_package):
    assert_one_line_error(edge_os("serve", "--models", tiny_package, "--memory-budget", "1M"),
                          "memory budget 1.0M cannot hold even", "--memory-budget")


@pytest.mark.slow
def test_serve_without_models_answers_with_the_bundled_model(tmp_path, mosquitto, default_package):
    # default_package packed the bundled model into this session's EDGE_OS_HOME: serve finds it there.
    proc, log = start_serve(tmp_path, mosquitto, timeout=600)
    requester = Requester(mosquitto.port, "asker")
    try:
        requester.ask({"prompt": "What is the capital of France?", "max_tokens": 16, "temperature": 0}, b"q",
                      topic="edge-os/kitchen/req")
        answer = requester.final(b"q", timeout=120)
        assert answer["type"] == "final" and answer["served_by"] == "local", answer
        assert "Paris" in answer["text"], answer
    finally:
        requester.close()
        stop(proc, log)
    assert os.environ["EDGE_OS_HOME"] in str(default_package)
