"""The bridge as a front door of the real scheduler (`edge_os.scheduler.service`), on a real
broker, with real engines: answers, a memory refusal handed to the cloud, and telemetry."""

from __future__ import annotations

from pathlib import Path

from edge_os.mqtt import RedactionConfig
from edge_os.runtime.engine import Engine
from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams
from tests.integration.mqtt_cli import ask_with_mosquitto_clients
from tests.integration.mqtt_harness import Mosquitto, Requester
from tests.integration.openai_stub import OpenAIStub, cloud_answer
from tests.waiting import wait_until


def greedy_text(package: Path, prompt: str, max_tokens: int) -> str:
    engine = Engine.load(package)
    request = GenerationRequest(prompt=prompt, max_tokens=max_tokens, sampling=SamplingParams(temperature=0))
    return [e for e in engine.generate(request) if isinstance(e, Finished)][0].text


def test_mosquitto_pub_asks_the_real_scheduler(serve_with_mqtt, mosquitto: Mosquitto, tiny_package: Path):
    serve_with_mqtt(tiny_package)
    question = {"prompt": "status of pump 4?", "max_tokens": 8, "temperature": 0}
    [(corr, answer)] = ask_with_mosquitto_clients(mosquitto.port, "edge-os/real/req", question, "real-1", timeout=60)
    assert corr == "real-1"
    assert answer["type"] == "final" and answer["served_by"] == "local", answer
    assert answer["text"] == greedy_text(tiny_package, "status of pump 4?", 8)
    assert answer["usage"]["completion_tokens"] <= 8


def test_a_refusal_of_the_real_scheduler_is_served_by_the_cloud(
    serve_with_mqtt, requester: Requester, openai_stub: OpenAIStub, cloud_worker, tiny_package: Path
):
    # The scheduler refuses a model the device does not have (serve refuses at start a memory budget
    # that cannot hold its models, so a model that is absent is the refusal a real device meets first).
    serve_with_mqtt(tiny_package, redaction=RedactionConfig(names=("Dana",)))
    request = {"prompt": "Dana at dana@farm.example asks about the silo", "model": "llama-70b"}
    requester.ask(request, b"m1", topic="edge-os/real/req")
    answer = requester.final(b"m1", timeout=30)
    assert answer["type"] == "final", answer
    assert (answer["served_by"], answer["reason_code"]) == ("cloud", "model_absent")
    assert answer["text"] == cloud_answer("[NAME] at [EMAIL] asks about the silo")
    [upstream] = openai_stub.requests
    assert upstream["messages"] == [{"role": "user", "content": "[NAME] at [EMAIL] asks about the silo"}]


def test_telemetry_reports_the_real_scheduler(serve_with_mqtt, mosquitto: Mosquitto, tiny_package: Path):
    watcher = Requester(mosquitto.port, "ops", subscribe=("edge-os/real/telemetry",))
    try:
        serve_with_mqtt(tiny_package, telemetry_interval_s=0.3)
        report = wait_until(lambda: watcher.on_topic("edge-os/real/telemetry"), 10, what="telemetry")[-1]
    finally:
        watcher.close()
    status = report["scheduler"]
    assert [m["name"] for m in status["models"]] == [Engine.load(tiny_package).name]
    assert status["memory"]["budget_bytes"] > 0
    assert "setpoint_c" in status["governor"]
