"""Cloud fallback: the scheduler refuses, a cloud worker in another process answers, and what
left the device was redacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_os.mqtt import RedactionConfig
from edge_os.runtime.request import Refused
from tests.integration.echo_scheduler import EchoScheduler, prompt_text
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.integration.openai_stub import OpenAIStub, cloud_answer
from tests.waiting import wait_until

SECRET_PROMPT = "Alice Smith (alice.smith@example.com, +1 415 555 0100) asks: is boiler 3 safe above 80 C?"
REDACTED_PROMPT = "[NAME] ([EMAIL], [PHONE]) asks: is boiler 3 safe above 80 C?"


def _refuse(request) -> Refused:
    if "memory" in prompt_text(request):
        return Refused("over_memory", "needs 900 MiB, 350 MiB free", fallback=True)
    return Refused("too_hot", "SoC at 91 C, setpoint 75 C", fallback=True)


def test_refused_requests_are_served_by_the_cloud_worker_redacted(
    start_bridge, requester: Requester, mosquitto: Mosquitto, openai_stub: OpenAIStub, cloud_worker
):
    spy = Requester(mosquitto.port, "spy", subscribe=("edge-os/cloud/req",))
    scheduler = EchoScheduler(refuse=_refuse)
    start_bridge(scheduler, redaction=RedactionConfig(names=("Alice Smith",)))

    requester.ask({"prompt": SECRET_PROMPT, "stream": True, "max_tokens": 40}, b"hot", topic="edge-os/dev1/req")
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "memory check for bob@corp.io"}]
    requester.ask({"messages": chat}, b"mem", topic="edge-os/dev1/req")

    hot = requester.final(b"hot", timeout=30)
    assert hot["type"] == "final", hot
    assert hot["served_by"] == "cloud"
    assert hot["reason_code"] == "too_hot" and "91 C" in hot["reason"]
    assert hot["text"] == cloud_answer(REDACTED_PROMPT)
    assert hot["usage"]["prompt_tokens"] == 11
    deltas = requester.answers(b"hot", "delta")
    assert "".join(d["text"] for d in sorted(deltas, key=lambda d: d["seq"])) == hot["text"]

    mem = requester.final(b"mem", timeout=30)
    assert (mem["served_by"], mem["reason_code"]) == ("cloud", "over_memory")
    assert mem["text"] == cloud_answer("memory check for [EMAIL]")
    assert requester.answers(b"mem", "delta") == []  # not asked to stream

    # What the cloud worker received over MQTT, and what it sent to the OpenAI server.
    wait_until(lambda: len(spy.on_topic("edge-os/cloud/req")) >= 2, 5, what="both cloud requests")
    received = {r["fallback"]["code"]: r for r in spy.on_topic("edge-os/cloud/req")}
    assert received["too_hot"]["prompt"] == REDACTED_PROMPT
    assert received["too_hot"]["fallback"]["device_id"] == "dev1"
    assert received["over_memory"]["messages"][1]["content"] == "memory check for [EMAIL]"
    sent_upstream = [m["content"] for body in openai_stub.requests for m in body["messages"]]
    assert REDACTED_PROMPT in sent_upstream
    for leaked in ("Alice", "alice.smith@example.com", "555", "bob@corp.io"):
        assert not any(leaked in text for text in sent_upstream), leaked
    assert len(openai_stub.requests) == 2  # each refused request reached the cloud once
    spy.close()


def test_no_cloud_answer_in_time_is_a_cloud_timeout_error(start_bridge, requester: Requester):
    start_bridge(EchoScheduler(refuse=_refuse), cloud_timeout_s=1.0)
    requester.ask({"prompt": "anyone there?"}, b"t1", topic="edge-os/dev1/req")
    answer = requester.final(b"t1", timeout=10)
    assert (answer["type"], answer["code"]) == ("error", "cloud_timeout")
    assert "91 C" in answer["message"]


def test_a_cloud_worker_that_starts_late_still_gets_the_request(
    start_bridge, requester: Requester, mosquitto: Mosquitto, openai_stub: OpenAIStub, tmp_path: Path
):
    """No cloud worker is subscribed when the device hands the request over: the broker says "no
    matching subscribers", the request stays in the outbox and is offered again until one is."""
    bridge = start_bridge(EchoScheduler(refuse=_refuse), cloud_timeout_s=30.0)
    requester.ask({"prompt": "late worker"}, b"late", topic="edge-os/dev1/req")
    wait_until(lambda: bridge.stats()["fallback"]["forwarded"] == 1, 5, what="the hand-over")
    wait_until(lambda: bridge.stats()["sent"] >= 2, 10, what="a second offer")  # parked and offered again
    assert requester.answers(b"late") == []
    worker = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "cloud-worker", "--mqtt", mosquitto.url,
         "--openai-url", openai_stub.url, "--state-dir", str(tmp_path / "late-cloud-state")],
        env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        answer = requester.final(b"late", timeout=20)
        assert (answer["served_by"], answer["text"]) == ("cloud", cloud_answer("late worker"))
    finally:
        worker.terminate()
        worker.wait(60)  # an upper bound: SIGTERM lets workers finish (up to 5 s), slower under load


def test_redaction_can_be_turned_off(start_bridge, requester: Requester, mosquitto: Mosquitto):
    spy = Requester(mosquitto.port, "spy", subscribe=("edge-os/cloud/req",))
    start_bridge(EchoScheduler(refuse=_refuse), redaction=RedactionConfig(enabled=False), cloud_timeout_s=1.0)
    requester.ask({"prompt": SECRET_PROMPT}, b"raw", topic="edge-os/dev1/req")
    handed_over = wait_until(lambda: spy.on_topic("edge-os/cloud/req"), 5, what="the cloud request")
    assert handed_over[0]["prompt"] == SECRET_PROMPT
    spy.close()
