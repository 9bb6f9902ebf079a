"""Agent requests over MQTT on a real mosquitto, with the firmware simulator on a pty as the device.
The model's calls come from the scripted stand-in; the bridge, the broker, the confirmation messages,
the policy, the wire, the audit log and the simulator's journal are real."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_os.agent import AuditLog, Policy, from_device
from edge_os.api.agent_runs import AgentRuns
from edge_os.mqtt.bridge import MqttBridge
from edge_os.mqtt.config import Backoff, BridgeConfig, BrokerConfig
from firmware_bridge import Device
from tests.integration.echo_scheduler import EchoScheduler
from tests.integration.mqtt_harness import Mosquitto, Requester
from tests.waiting import wait_until

from ..firmware_bridge.sim import Simulator
from .scripted_model import ScriptedModel, call

AGENT = "edge-os/dev1/agent"
CONFIRM = "edge-os/dev1/agent/confirm"
POLICY = Policy.from_dict({"confirm_timeout_s": 1.5, "actuators": {"fan": {"max": 120, "confirm": True}}})


@pytest.fixture
def start_agent(mosquitto: Mosquitto, device: Device, audit: AuditLog,
                tmp_path: Path) -> Iterator[Callable[[list[str]], MqttBridge]]:
    """``start_agent(turns)``: a bridge whose agent's model plays ``turns``, online on the broker."""
    bridges: list[MqttBridge] = []

    def start(turns: list[str]) -> MqttBridge:
        runs = AgentRuns(from_device(device), POLICY, audit, model=ScriptedModel(turns))
        config = BridgeConfig(BrokerConfig.from_url(mosquitto.url), device_id="dev1",
                              state_dir=tmp_path / "bridge-state", telemetry_interval_s=60.0,
                              backoff=Backoff(initial_s=0.05, max_s=0.5))
        bridge = MqttBridge(EchoScheduler(), config, agent=runs).start()
        bridges.append(bridge)
        assert bridge.wait_connected(10), "bridge did not connect"
        return bridge

    yield start
    for bridge in bridges:
        bridge.stop()


def message(requester: Requester, correlation: bytes, kind: str, timeout: float = 60) -> dict:
    return wait_until(lambda: next(iter(requester.answers(correlation, kind)), None), timeout,
                      what=f"a {kind} message for {correlation!r}")


def refusals(audit: AuditLog) -> list[dict]:
    return [e["data"] for e in audit.entries() if e["kind"] == "refusal"]


def test_a_confirmed_actuation_sends_exactly_one_command(start_agent, requester: Requester, sim: Simulator,
                                                         audit: AuditLog) -> None:
    start_agent([call("set_fan", value=80), "The fan runs at 80."])
    requester.ask({"goal": "Set the fan to 80"}, b"run-1", topic=AGENT)
    question = message(requester, b"run-1", "confirm")
    assert (question["tool"], question["arguments"], question["answer_on"]) == ("set_fan", {"value": 80}, CONFIRM)
    assert sim.commands() == []  # nothing on the wire before the answer
    requester.ask({"id": question["id"], "answer": "yes"}, b"yes-1", topic=CONFIRM)
    result = message(requester, b"run-1", "agent_result")
    assert result["status"] == "answered" and result["answer"] == "The fan runs at 80."
    assert [(s["tool"], s["status"]) for s in result["steps"][:1]] == [("set_fan", "ok")]
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 80)]
    confirmation = next(e["data"] for e in audit.entries() if e["kind"] == "confirmation")
    assert confirmation["answer"] == "yes"
    assert audit.verify() == []


def test_a_confirmation_answered_no_actuates_nothing(start_agent, requester: Requester, sim: Simulator,
                                                     audit: AuditLog) -> None:
    start_agent([call("set_fan", value=80), "Not allowed."])
    requester.ask({"goal": "Set the fan to 80"}, b"run-2", topic=AGENT)
    question = message(requester, b"run-2", "confirm")
    requester.ask({"id": question["id"], "answer": "no"}, b"no-1", topic=CONFIRM)
    result = message(requester, b"run-2", "agent_result")
    assert result["steps"][0]["status"] == "refused"
    assert "not given (no)" in result["steps"][0]["result"]["refused"]
    assert sim.commands() == []
    assert [r["tool"] for r in refusals(audit)] == ["set_fan"]


def test_an_unanswered_confirmation_is_a_no(start_agent, requester: Requester, sim: Simulator,
                                            audit: AuditLog) -> None:
    start_agent([call("set_fan", value=80), "No answer, no fan."])
    requester.ask({"goal": "Set the fan to 80"}, b"run-3", topic=AGENT)
    question = message(requester, b"run-3", "confirm")
    assert question["timeout_s"] == POLICY.confirm_timeout_s
    result = message(requester, b"run-3", "agent_result")
    assert "not given (timeout)" in result["steps"][0]["result"]["refused"]
    assert sim.commands() == []
    assert [r["tool"] for r in refusals(audit)] == ["set_fan"]
    # A late answer finds nothing waiting: an error, and still nothing on the wire.
    requester.ask({"id": question["id"], "answer": "yes"}, b"late-1", topic=CONFIRM)
    assert message(requester, b"late-1", "error")["code"] == "unknown_confirmation"
    assert sim.commands() == []


def test_a_retained_agent_request_is_refused_not_run_at_each_start(start_agent, requester: Requester,
                                                                    sim: Simulator, audit: AuditLog) -> None:
    requester.ask({"goal": "Set the fan to 80"}, b"kept", topic=AGENT, retain=True)
    wait_until(lambda: b"kept" in requester.acked, 10, what="the broker's ack of the retained request")
    start_agent([call("set_fan", value=80), "The fan runs at 80."])
    error = message(requester, b"kept", "error")
    assert error["code"] == "retained_request" and "retain off" in error["message"]
    assert audit.entries() == [] and sim.commands() == []  # no run, nothing on the wire
    requester.client.publish(AGENT, b"", qos=1, retain=True).wait_for_publish(5)  # cleared


@pytest.mark.parametrize("body, code", [
    (b"not json", "invalid_request"),
    ({"goal": ""}, "invalid_request"),
    ({"goal": "fan", "max_steps": 99}, "invalid_request"),
    ({"goal": "fan", "confirm": ["fan"]}, "invalid_request"),
    ({"goal": "fan", "stream": True}, "invalid_request"),
    ({"goal": "fan", "extra": 1}, "invalid_request"),
])
def test_bad_agent_requests_get_an_error(start_agent, requester: Requester, sim: Simulator, audit: AuditLog,
                                         body, code: str) -> None:
    start_agent([call("set_fan", value=80)])
    requester.ask(body, b"bad", topic=AGENT)
    error = message(requester, b"bad", "error")
    assert error["code"] == code and error["message"]
    assert audit.entries() == []  # no run started
    assert sim.commands() == []


@pytest.mark.parametrize("body, code", [
    ({"id": "nobody-asked", "answer": "yes"}, "unknown_confirmation"),
    ({"id": "x", "answer": "maybe"}, "invalid_confirmation"),
    (b"[1, 2]", "invalid_confirmation"),
])
def test_bad_confirmations_get_an_error(start_agent, requester: Requester, sim: Simulator, body, code: str) -> None:
    start_agent([])
    requester.ask(body, b"conf", topic=CONFIRM)
    assert message(requester, b"conf", "error")["code"] == code
    assert sim.commands() == []


@pytest.mark.slow
def test_serve_runs_the_agent_over_mqtt_with_the_real_model(tmp_path: Path, mosquitto: Mosquitto, sim: Simulator,
                                                            default_package: Path) -> None:
    """`edge-os serve --mqtt URL --agent-port PTY` as a user starts it, with the bundled model: every
    confirmation asked is answered yes, and only confirmed, in-policy commands reach the simulator."""
    from tests.integration.test_cli_serve import start_serve, stop

    policy = tmp_path / "policy.toml"
    policy.write_text("confirm_timeout_s = 30\n[actuators.fan]\nmax = 120\nconfirm = true\n")
    audit = tmp_path / "audit.jsonl"
    proc, log = start_serve(tmp_path, mosquitto, "--agent-port", sim.path, "--agent-policy", str(policy),
                            "--agent-audit", str(audit), timeout=600)
    requester = Requester(mosquitto.port, "agent-asker")
    answered: set[str] = set()

    def result_or_answer_confirmations() -> dict | None:
        for question in requester.answers(b"real", "confirm"):
            if question["id"] not in answered:
                answered.add(question["id"])
                requester.ask({"id": question["id"], "answer": "yes"}, question["id"].encode(),
                              topic="edge-os/kitchen/agent/confirm")
        return next(iter(requester.answers(b"real", "agent_result") + requester.answers(b"real", "error")), None)

    try:
        requester.ask({"goal": "Set the fan to 100", "max_steps": 3}, b"real", topic="edge-os/kitchen/agent")
        result = wait_until(result_or_answer_confirmations, 600, interval=0.1, what="the agent's result")
    finally:
        requester.close()
        stop(proc, log)
    assert result["type"] == "agent_result", result
    confirms = requester.answers(b"real", "confirm")
    sent = [(c["actuator"], c["value"]) for c in sim.commands()]
    assert all(a == "fan" and 0 <= v <= 120 for a, v in sent), sent
    assert len(sent) <= len(confirms)  # nothing went on the wire unconfirmed
    ok = [(s["result"]["actuator"], s["result"]["value"]) for s in result["steps"]
          if s["status"] == "ok" and isinstance(s["result"], dict) and "actuator" in s["result"]]
    assert ok == sent
    assert AuditLog(audit).verify() == []


def test_a_copy_of_an_agent_request_is_not_run_again(start_agent, requester: Requester, sim: Simulator,
                                                      audit: AuditLog) -> None:
    start_agent([call("read_temperature"), "Warm.", call("read_temperature"), "Still warm."])
    requester.ask({"goal": "How warm is it?"}, b"once", topic=AGENT)
    requester.ask({"goal": "How warm is it?"}, b"once", topic=AGENT)  # a QoS 1 retry with the same correlation
    requester.ask({"goal": "And now?"}, b"next", topic=AGENT)
    # Runs are served in order: when the later request is answered, the copy was taken and dropped.
    assert message(requester, b"next", "agent_result")["answer"] == "Still warm."
    assert len(requester.answers(b"once", "agent_result")) == 1
    assert [e["data"]["goal"] for e in audit.entries() if e["kind"] == "run"] == ["How warm is it?", "And now?"]


def test_an_agent_request_without_correlation_data_is_refused(start_agent, requester: Requester,
                                                              audit: AuditLog) -> None:
    start_agent([call("read_temperature")])
    requester.ask({"goal": "How warm is it?"}, None, topic=AGENT)
    error = wait_until(lambda: next((b for _t, _c, b in requester.received if b.get("type") == "error"), None), 20,
                       what="an error")
    assert error["code"] == "missing_correlation_data"
    assert audit.entries() == []


def test_a_run_over_mqtt_is_on_record_after_a_restart(start_agent, requester: Requester, sim: Simulator,
                                                      audit: AuditLog) -> None:
    """The run's origin is in the audit log with it, so after a restart it is listed like an HTTP run
    (``AuditLog.runs``, ``edge-os audit runs``): who asked on which topic, the goal, how it ended."""
    from tests.bounded_cli import run_edge_os

    bridge = start_agent(["The light is fine."])
    requester.ask({"goal": "How is the light?"}, b"run-9", topic=AGENT)
    result = message(requester, b"run-9", "agent_result")
    bridge.stop()

    [run] = AuditLog(audit.path).runs()  # a fresh reader: nothing from the process that ran it
    assert run["run"] == result["run_id"] and run["goal"] == "How is the light?"
    assert run["via"] == "mqtt" and run["requester"] == requester.response_topic
    assert run["status"] == "answered" and run["finished"] >= run["started"]
    listed = run_edge_os("audit", "runs", "--json", "--audit", str(audit.path))
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [run]
