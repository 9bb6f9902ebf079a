"""The agent against the firmware simulator on a real pty: the calls come from a scripted stand-in for
the model; the policy, the wire, the audit log and the simulator's journal are real."""

from __future__ import annotations

import asyncio
import json
import signal
import threading

from edge_os.agent import Agent, AuditLog, Policy, from_device, tool
from firmware_bridge import Device

from ..firmware_bridge.sim import Simulator
from .scripted_model import ScriptedModel, call, last_result

POLICY = Policy.from_dict({
    "confirm_timeout_s": 0.3,
    "actuators": {
        "fan": {"min": 0, "max": 180, "max_per_minute": 4, "max_step": 120, "readback": "temperature"},
        "led": {"confirm": True},
    },
})


def kinds(audit: AuditLog) -> list[str]:
    return [e["kind"] for e in audit.entries()]


def test_a_run_that_reads_a_sensor(device: Device, sim: Simulator, audit: AuditLog) -> None:
    model = ScriptedModel([call("read_temperature"),
                           lambda messages: f"It is {last_result(messages)['value']} degrees."])
    result = Agent(model, from_device(device), POLICY, audit).run("How warm is it?")
    assert result.status == "answered"
    read = result.steps[0]
    assert (read.tool, read.status) == ("read_temperature", "ok")
    assert read.result["unit"] == "°C" and -40 <= read.result["value"] <= 85
    assert result.answer == f"It is {read.result['value']} degrees."
    assert sim.commands() == []
    assert kinds(audit) == ["run", "tool_call", "answer"]
    # Every turn was offered the grammar: a final answer, or a call to a tool that exists.
    assert all(c is not None and c.kind == "json_schema" and "read_temperature" in c.schema
               for c in model.constraints)
    assert "read_temperature" in model.prompts[0][0]["content"]


def test_call_first_leaves_out_the_answer_on_the_first_turn(device: Device, sim: Simulator, audit: AuditLog) -> None:
    model = ScriptedModel([call("read_light"), "Bright."])
    result = Agent(model, from_device(device), POLICY, audit, call_first=True).run("How bright is it?")
    assert result.status == "answered"
    first, second = (json.loads(c.schema) for c in model.constraints)
    assert all("answer" not in option["properties"] for option in first["anyOf"])
    assert any("answer" in option["properties"] for option in second["anyOf"])


def test_a_run_that_sets_an_actuator_within_the_policy(device: Device, sim: Simulator, audit: AuditLog) -> None:
    model = ScriptedModel([call("set_fan", value=100), "The fan runs at 100."])
    result = Agent(model, from_device(device), POLICY, audit).run("Set the fan to 100")
    assert result.status == "answered"
    step = result.steps[0]
    assert step.status == "ok" and step.result["acknowledged"] is True
    assert step.result["readback"]["sensor"] == "temperature"  # read back after the command
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 100)]
    actuation = next(e for e in audit.entries() if e["kind"] == "actuation")
    assert actuation["data"]["value"] == 100 and actuation["data"]["ok"] is True
    assert audit.verify() == []


def test_a_run_asked_to_exceed_the_policy_sends_nothing(device: Device, sim: Simulator, audit: AuditLog) -> None:
    # 250 is a value the device accepts (0..255) but the policy does not; the relay is not in the policy.
    model = ScriptedModel([call("set_fan", value=250), call("set_relay", value=1), "I could not."])
    result = Agent(model, from_device(device), POLICY, audit).run("Fan to full and relay on")
    assert [s.status for s in result.steps] == ["refused", "refused", "answer"]
    assert "outside the policy's range 0..180" in result.steps[0].result["refused"]
    assert "does not allow setting relay" in result.steps[1].result["refused"]
    assert last_result(model.prompts[2]) == result.steps[1].result  # the refusal went back to the model
    assert sim.commands() == []
    refusals = [e["data"] for e in audit.entries() if e["kind"] == "refusal"]
    assert [r["tool"] for r in refusals] == ["set_fan", "set_relay"]


def test_max_step_and_rate_are_enforced(device: Device, sim: Simulator, audit: AuditLog) -> None:
    turns = [call("set_fan", value=v) for v in (170, 100, 160, 40, 20, 0)]
    result = Agent(ScriptedModel(turns), from_device(device), POLICY, audit, max_steps=7).run("wiggle the fan")
    # 170 is 170 from the initial 0 (max_step 120); 100, 160, 40 pass; 20 would be the 4th... no: the
    # 4th command in a minute is allowed (max_per_minute 4), the 5th is not.
    assert [s.status for s in result.steps[:6]] == ["refused", "ok", "ok", "ok", "ok", "refused"]
    assert [c["value"] for c in sim.commands()] == [100, 160, 40, 20]
    assert "last minute" in result.steps[5].result["refused"]


def test_a_confirmation_refused_by_timeout(device: Device, sim: Simulator, audit: AuditLog) -> None:
    nobody_answers = threading.Event()

    def confirm(question: str, timeout: float) -> bool:
        nobody_answers.wait(30)  # a person who never answers
        return True

    model = ScriptedModel([call("set_led", value=1), "No light."])
    try:
        result = Agent(model, from_device(device), POLICY, audit, confirm=confirm).run("Light on")
    finally:
        nobody_answers.set()
    assert result.steps[0].status == "refused"
    assert "not given (timeout)" in result.steps[0].result["refused"]
    assert sim.commands() == []
    confirmation = next(e["data"] for e in audit.entries() if e["kind"] == "confirmation")
    assert confirmation["answer"] == "timeout"


def test_a_confirmation_given_sends_the_command(device: Device, sim: Simulator, audit: AuditLog) -> None:
    asked = []

    def confirm(question: str, timeout: float) -> bool:
        asked.append(question)
        return True

    result = Agent(ScriptedModel([call("set_led", value=1)]), from_device(device), POLICY, audit,
                   confirm=confirm).run("Light on")
    assert result.steps[0].status == "ok"
    assert asked == ['set_led {"value": 1}: allow?']
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("led", 1)]


def test_dry_run_checks_but_sends_nothing(device: Device, sim: Simulator, audit: AuditLog) -> None:
    policy = Policy.from_dict({"dry_run": True, "actuators": {"fan": {"max": 200}}})
    result = Agent(ScriptedModel([call("set_fan", value=50), call("set_fan", value=255)]), from_device(device),
                   policy, audit).run("fan")
    assert [s.status for s in result.steps[:2]] == ["dry_run", "refused"]
    assert sim.commands() == []
    assert "dry_run" in kinds(audit)


def test_bad_calls_come_back_as_errors(device: Device, sim: Simulator, audit: AuditLog) -> None:
    turns = [call("open_window"), call("set_fan", value="high"), call("set_fan", value=50, speed=2),
             "<tool_call>{not json</tool_call>", "Sorry."]
    result = Agent(ScriptedModel(turns), from_device(device), POLICY, audit).run("cool down")
    assert [s.status for s in result.steps] == ["error", "error", "error", "error", "answer"]
    assert "there is no tool 'open_window'" in result.steps[0].result["error"]
    assert "must be an integer" in result.steps[1].result["error"]
    assert "unknown argument(s) ['speed']" in result.steps[2].result["error"]
    assert sim.commands() == []


def test_a_goal_that_loops_ends(device: Device, sim: Simulator, audit: AuditLog) -> None:
    result = Agent(ScriptedModel([call("read_light")] * 10), from_device(device), POLICY, audit,
                   max_steps=10).run("is it dark")
    assert result.status == "loop" and len(result.steps) == 3


def test_a_device_that_stops_answering_is_reported_as_failed(device: Device, sim: Simulator,
                                                             audit: AuditLog) -> None:
    agent = Agent(ScriptedModel([call("read_humidity"), "Humid."]), from_device(device), POLICY, audit)
    first = agent.run("check humidity")
    assert first.steps[0].status == "ok"
    agent.model = ScriptedModel([call("set_fan", value=60), "Fan is on."])
    sim.process.send_signal(signal.SIGSTOP)  # the board hangs
    try:
        result = agent.run("fan to 60")
    finally:
        sim.process.send_signal(signal.SIGCONT)
    assert result.status == "device_lost"
    failed = result.steps[-1]
    assert failed.status == "failed" and failed.result["ok"] is False
    assert "not acknowledged" in failed.result["error"]
    actuation = next(e["data"] for e in audit.entries() if e["kind"] == "actuation")
    assert actuation["ok"] is False and actuation["acknowledged"] is False
    assert result.answer is None  # the model's "Fan is on." was never asked for


def test_python_tools_are_read_only_or_denied(device: Device, sim: Simulator, audit: AuditLog) -> None:
    watered = []

    @tool
    def forecast(city: str, days: int = 1) -> dict:
        """The weather forecast for a city."""
        return {"city": city, "days": days, "rain_mm": 3}

    @tool(acting=True)
    def water_plants(litres: float) -> dict:
        """Open the irrigation valve for some litres."""
        watered.append(litres)
        return {"ok": True}

    turns = [call("forecast", city="Oslo"), call("water_plants", litres=2), "ok"]
    result = Agent(ScriptedModel(turns), [*from_device(device), forecast, water_plants], POLICY, audit).run("water?")
    assert result.steps[0].result == {"city": "Oslo", "days": 1, "rain_mm": 3}
    assert result.steps[1].status == "refused" and watered == []
    allowing = Policy.from_dict({"tools": {"allow": ["water_plants"]}})
    result = Agent(ScriptedModel([call("water_plants", litres=2)]), [water_plants], allowing, audit).run("water")
    assert result.steps[0].status == "ok" and watered == [2]


def test_the_async_twin(device: Device, sim: Simulator, audit: AuditLog) -> None:
    async def confirm(question: str, timeout: float) -> bool:
        await asyncio.sleep(0)
        return True

    async def main():
        agent = Agent(ScriptedModel([call("set_led", value=1), call("read_light"), "Bright."]), from_device(device),
                      POLICY, audit, confirm=confirm)
        return await agent.arun("light on and check")

    result = asyncio.run(main())
    assert [s.status for s in result.steps] == ["ok", "ok", "answer"]
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("led", 1)]
    assert audit.verify() == []


def test_rate_and_step_hold_across_runs_through_the_audit_log(device: Device, sim: Simulator,
                                                             audit: AuditLog) -> None:
    """A second agent (a second `edge-os agent` process) rebuilds what was sent from the audit log."""
    first = Agent(ScriptedModel([call("set_fan", value=v) for v in (100, 150, 100, 150)]), from_device(device),
                  POLICY, audit, max_steps=4)
    assert [s.status for s in first.run("fan").steps] == ["ok"] * 4
    second = Agent(ScriptedModel([call("set_fan", value=150)]), from_device(device), POLICY, audit)
    refused = second.run("fan").steps[0]
    assert refused.status == "refused" and "last minute" in refused.result["refused"]
    assert [c["value"] for c in sim.commands()] == [100, 150, 100, 150]


def test_a_repeated_setting_is_sent_once(device: Device, sim: Simulator, audit: AuditLog) -> None:
    model = ScriptedModel([call("set_fan", value=80)] * 2 + [call("set_fan", value=90), call("set_fan", value=80)])
    result = Agent(model, from_device(device), POLICY, audit, max_steps=4).run("fan to 80")
    assert [s.status for s in result.steps] == ["ok", "refused", "ok", "ok"]
    assert "already set to 80 in this run" in result.steps[1].result["refused"]
    assert [c["value"] for c in sim.commands()] == [80, 90, 80]


def test_a_confirmation_that_fails_is_a_no(device: Device, sim: Simulator, audit: AuditLog) -> None:
    def confirm(question: str, timeout: float) -> bool:
        raise EOFError("no terminal")

    result = Agent(ScriptedModel([call("set_led", value=1)]), from_device(device), POLICY, audit,
                   confirm=confirm).run("light")
    assert result.steps[0].status == "refused"
    assert "the confirmation failed: EOFError: no terminal" in result.steps[0].result["refused"]
    assert sim.commands() == []
