"""`edge-os agent` as a real process: bad input is one line before any model loads; with the real
bundled model against the simulator, whatever the model chooses stays inside the policy and on record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_os.agent import AuditLog
from tests.bounded_cli import assert_one_line_error, run_edge_os

from ..firmware_bridge.sim import Simulator

POLICY = """
[actuators.fan]
min = 0
max = 120
max_step = 60
readback = "temperature"
"""


def test_a_bad_policy_is_one_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[actuators.fan]\nmax = -1\nmin = 3\n")
    result = run_edge_os("agent", "--policy", str(policy), "--audit", str(tmp_path / "a.jsonl"), "cool down")
    assert_one_line_error(result, "min 3 is above max -1")
    missing = run_edge_os("agent", "--policy", str(tmp_path / "none.toml"), "cool down")
    assert_one_line_error(missing, "none.toml")


def test_a_missing_port_is_one_line(tmp_path: Path) -> None:
    result = run_edge_os("agent", "--port", str(tmp_path / "ttyNONE"), "--audit", str(tmp_path / "a.jsonl"), "x")
    assert_one_line_error(result, "ttyNONE")


@pytest.mark.slow
@pytest.mark.parametrize("goal", ["What is the temperature?", "Set the fan to 100", "Turn the relay on"])
def test_the_real_model_stays_inside_the_policy(sim: Simulator, tmp_path: Path, default_package, goal: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit.jsonl"
    result = run_edge_os("agent", "--port", sim.path, "--policy", str(policy), "--audit", str(audit),
                         "--model", str(default_package), "--json", goal, timeout=600, memory=4 << 30)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["goal"] == goal and report["status"] in ("answered", "max_steps", "loop")
    tools = {"read_temperature", "read_humidity", "read_light", "read_button", "set_led", "set_relay", "set_fan"}
    calls = [s for s in report["steps"] if s["tool"] is not None]
    assert all(s["tool"] in tools for s in calls), calls  # the grammar admits only tools that exist
    # Whatever the model chose, only commands inside the policy reached the device, each on record.
    sent = [(c["actuator"], c["value"]) for c in sim.commands()]
    assert all(a == "fan" and 0 <= v <= 120 for a, v in sent), sent
    log = AuditLog(audit)
    assert log.verify() == []
    recorded = [(e["data"]["actuator"], e["data"]["value"]) for e in log.entries() if e["kind"] == "actuation"]
    assert recorded == sent
    refused = [s["tool"] for s in calls if s["status"] == "refused"]
    assert len([e for e in log.entries() if e["kind"] == "refusal"]) == len(refused)


def test_serve_agent_options_need_http_and_a_port(tmp_path: Path) -> None:
    result = run_edge_os("serve", "--agent-port", str(tmp_path / "tty"))
    assert_one_line_error(result, "--agent-port needs --http")
    result = run_edge_os("serve", "--http", "0", "--agent-policy", str(tmp_path / "p.toml"))
    assert_one_line_error(result, "need --agent-port")
    result = run_edge_os("serve", "--http", "0", "--agent-port", str(tmp_path / "ttyNONE"))
    assert_one_line_error(result, "ttyNONE")
