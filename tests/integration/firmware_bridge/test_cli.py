"""`edge-os sensors` and `edge-os actuate` against the simulator."""

from __future__ import annotations

import json

from edge_os.cli.main import main

from .sim import Simulator


def test_sensors_json(sim: Simulator, capsys) -> None:
    assert main(["sensors", sim.path, "--json"]) == 0
    [device] = json.loads(capsys.readouterr().out)
    assert device["port"] == sim.path and device["firmware"] == "edge-bridge-sim"
    assert [s["name"] for s in device["sensors"]] == ["temperature", "humidity", "light", "button"]
    assert all(s["min"] <= s["value"] <= s["max"] for s in device["sensors"])
    assert {a["name"]: a.get("values") for a in device["actuators"]} == {"led": [0, 1], "relay": [0, 1], "fan": None}


def test_sensors_text(sim: Simulator, capsys) -> None:
    assert main(["sensors", sim.path]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"edge-bridge-sim 1.0.0 on {sim.path}")
    assert "°C" in out and "an integer from 0 to 255 (pwm)" in out


def test_actuate(sim: Simulator, capsys) -> None:
    assert main(["actuate", sim.path, "fan", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ack"] is True and report["value"] == 200 and report["retries"] == 0
    assert main(["actuate", sim.path, "led", "1"]) == 0
    assert capsys.readouterr().out.startswith("led = 1: acknowledged by edge-bridge-sim 1.0.0")
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 200), ("led", 1)]


def test_bad_input_is_one_line_and_non_zero(sim: Simulator, capsys) -> None:
    cases = [
        (["actuate", sim.path, "fan", "300"], "300 is not allowed for fan"),
        (["actuate", sim.path, "heater", "1"], "unknown actuator 'heater'"),
        (["actuate", sim.path, "fan", "fast"], "VALUE must be an integer"),
        (["actuate", "/dev/does-not-exist", "fan", "1"], "cannot open serial port /dev/does-not-exist"),
        (["sensors", "loop://"], "did not answer"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("edge-os: error: ") and message in err, err
    assert sim.commands() == []
