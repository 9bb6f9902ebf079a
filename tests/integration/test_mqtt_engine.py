"""The MQTT front door on real engines: a cloud worker serving a packed model (`-m PACKAGE`),
and mosquitto_pub asking the bundled default model through the real scheduler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_os.runtime.engine import Engine
from edge_os.runtime.request import Finished, GenerationRequest, Refused, SamplingParams
from tests.integration.echo_scheduler import EchoScheduler
from tests.integration.mqtt_cli import ask_with_mosquitto_clients
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.waiting import wait_until


def test_cloud_worker_serves_a_package(
    start_bridge, requester: Requester, mosquitto: Mosquitto, tiny_package: Path, tmp_path: Path
):
    """`edge-os cloud-worker -m PACKAGE` in its own process answers what the device refused; the
    text equals what the same engine produces directly for the redacted prompt (greedy)."""
    log = tmp_path / "cloud-worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "cloud-worker", "--mqtt", mosquitto.url, "-m", str(tiny_package),
         "--state-dir", str(tmp_path / "cloud-state")],
        env=run_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: "subscribed" in log.read_text(), 60, what="the cloud worker subscribed")
        refuse = Refused("model_absent", "no package for this model on the device", fallback=True)
        start_bridge(EchoScheduler(refuse=lambda r: refuse))
        body = {"prompt": "write to ops@example.com", "max_tokens": 6, "temperature": 0}
        requester.ask(body, b"pkg", topic="edge-os/dev1/req")
        answer = requester.final(b"pkg", timeout=60)
    finally:
        worker.terminate()
        worker.wait(60)  # an upper bound: SIGTERM lets workers finish (up to 5 s), slower under load
    assert answer["type"] == "final", answer
    assert (answer["served_by"], answer["reason_code"]) == ("cloud", "model_absent")
    engine = Engine.load(tiny_package)
    request = GenerationRequest(prompt="write to [EMAIL]", max_tokens=6, sampling=SamplingParams(temperature=0))
    direct = [e for e in engine.generate(request) if isinstance(e, Finished)][0]
    assert answer["text"] == direct.text
    assert answer["usage"]["completion_tokens"] == direct.usage.completion_tokens


@pytest.mark.slow
def test_mosquitto_pub_asks_the_default_model(serve_with_mqtt, mosquitto: Mosquitto, default_package: Path):
    """The bundled SmolLM2-135M on the real scheduler, asked with the stock mosquitto clients."""
    serve_with_mqtt(default_package)
    question = {"prompt": "What is the capital of France?", "max_tokens": 24, "temperature": 0}
    [(corr, answer)] = ask_with_mosquitto_clients(mosquitto.port, "edge-os/real/req", question, "france", timeout=120)
    assert corr == "france"
    assert answer["type"] == "final" and answer["served_by"] == "local", answer
    assert "Paris" in answer["text"]
    assert answer["usage"]["completion_tokens"] >= 1
