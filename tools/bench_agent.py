#!/usr/bin/env python3
"""How often a model picks the right tool with valid arguments, with and without the grammar.

Over GOALS (each with its one right call), the agent's first turn is decoded in each turn format
(``json``, ``tags``), under the grammar and freely, against the tools of the firmware simulator
(built with its Makefile and run on a pty; or --port for a real device). A dry-run policy that
allows every actuator means nothing is actuated; sensor reads are real. Reports, per mode: a call
at all, a call to an existing tool with schema-valid arguments, the right tool, the right tool
with the right arguments, and the mean seconds per turn. The figures are the number to raise,
not a test threshold.

    .venv/bin/python tools/bench_agent.py                 # the bundled SmolLM2-135M
    .venv/bin/python tools/bench_agent.py --model NAME --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_os.agent import Agent, Policy, from_device
from edge_os.agent.tools import check_arguments
from firmware_bridge import Device

ROOT = Path(__file__).resolve().parent.parent

# (goal, right tool, right arguments)
GOALS: list[tuple[str, str, dict]] = [
    ("What is the temperature?", "read_temperature", {}),
    ("How warm is it in here?", "read_temperature", {}),
    ("Tell me the current temperature in degrees.", "read_temperature", {}),
    ("Is it too hot in the greenhouse?", "read_temperature", {}),
    ("What is the humidity?", "read_humidity", {}),
    ("How humid is the air?", "read_humidity", {}),
    ("Read the relative humidity sensor.", "read_humidity", {}),
    ("How bright is it?", "read_light", {}),
    ("What is the light level in lux?", "read_light", {}),
    ("Is it dark in the room?", "read_light", {}),
    ("Is the button pressed?", "read_button", {}),
    ("Check whether someone is pressing the button.", "read_button", {}),
    ("Turn on the LED.", "set_led", {"value": 1}),
    ("Switch the LED on please.", "set_led", {"value": 1}),
    ("Turn off the LED.", "set_led", {"value": 0}),
    ("Switch the led off.", "set_led", {"value": 0}),
    ("Turn the relay on.", "set_relay", {"value": 1}),
    ("Close the relay.", "set_relay", {"value": 1}),
    ("Turn the relay off.", "set_relay", {"value": 0}),
    ("Open the relay so the heater stops.", "set_relay", {"value": 0}),
    ("Set the fan to 100.", "set_fan", {"value": 100}),
    ("Set the fan speed to 200.", "set_fan", {"value": 200}),
    ("Run the fan at full speed, 255.", "set_fan", {"value": 255}),
    ("Stop the fan.", "set_fan", {"value": 0}),
    ("Turn the fan off.", "set_fan", {"value": 0}),
    ("Set fan to 50", "set_fan", {"value": 50}),
    ("Fan at 128 please.", "set_fan", {"value": 128}),
    ("Set the fan PWM to 10.", "set_fan", {"value": 10}),
    ("Light the LED so I can see.", "set_led", {"value": 1}),
    ("Power the relay.", "set_relay", {"value": 1}),
    ("Give me a humidity reading.", "read_humidity", {}),
    ("Measure the light.", "read_light", {}),
]
# (style, grammar, call_first)
MODES = {"json+grammar": ("json", True, False), "json free": ("json", False, False),
         "tags+grammar": ("tags", True, False), "tags free": ("tags", False, False),
         "json+grammar+call-first": ("json", True, True), "tags+grammar+call-first": ("tags", True, True)}


class StopAfterOneTurn:
    """Wraps the model to time its turns."""

    def __init__(self, model) -> None:
        self.model, self.seconds = model, []

    def turn(self, messages, constraint, max_tokens):
        started = time.perf_counter()
        try:
            return self.model.turn(messages, constraint, max_tokens)
        finally:
            self.seconds.append(time.perf_counter() - started)


def start_simulator(workdir: Path) -> tuple[subprocess.Popen, str]:
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware_bridge"), f"BUILD={workdir}", "sim"], check=True,
                   capture_output=True)
    process = subprocess.Popen([str(workdir / "edge-bridge-sim")], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def load_model(name: str | None):
    from edge_os.agent.model import EngineModel
    from edge_os.default_model import default_package
    from edge_os.runtime.engine import Engine
    from edge_os.store.resolve import resolve_model

    package = resolve_model(name) if name else default_package()
    return EngineModel(Engine.load(package))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a stored model's NAME[:TAG] or a package directory (default: bundled)")
    parser.add_argument("--port", help="a device to use instead of the simulator")
    parser.add_argument("--limit", type=int, default=len(GOALS), help="only the first N goals")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    unknown = sorted(set(args.modes.split(",")) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; use {', '.join(MODES)}")

    with tempfile.TemporaryDirectory() as tmp:
        process = None
        port = args.port
        if port is None:
            process, port = start_simulator(Path(tmp))
        try:
            model = StopAfterOneTurn(load_model(args.model))
            with Device.open(port) as device:
                tools = from_device(device)
                schemas = {t.name: t.parameters for t in tools}
                policy = Policy.from_dict({"dry_run": True, "actuators": {a.name: {} for a in
                                                                           device.capabilities.actuators}})
                report = {}
                for key in args.modes.split(","):
                    style, grammar, call_first = MODES[key]
                    counts = {"call": 0, "valid": 0, "right_tool": 0, "right_call": 0}
                    model.seconds = []
                    for goal, right_tool, right_args in GOALS[: args.limit]:
                        agent = Agent(model, tools, policy, None, max_steps=1, style=style, grammar=grammar,
                                      call_first=call_first)
                        step = agent.run(goal).steps[0]
                        if step.tool is None:
                            continue
                        counts["call"] += 1
                        valid = step.tool in schemas and check_arguments(schemas[step.tool], step.arguments) is None
                        counts["valid"] += valid
                        counts["right_tool"] += step.tool == right_tool
                        counts["right_call"] += step.tool == right_tool and step.arguments == right_args
                    n = min(args.limit, len(GOALS))
                    report[key] = {**{k: round(v / n, 3) for k, v in counts.items()}, "goals": n,
                                   "s_per_turn": round(sum(model.seconds) / len(model.seconds), 2)}
                    print(f"{key:24} " + " ".join(f"{k}={v}" for k, v in report[key].items()), file=sys.stderr)
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'mode':24} {'call':>6} {'valid':>6} {'tool':>6} {'tool+args':>10} {'s/turn':>7}")
        for key, r in report.items():
            print(f"{key:24} {r['call']:6.0%} {r['valid']:6.0%} {r['right_tool']:6.0%} {r['right_call']:10.0%} "
                  f"{r['s_per_turn']:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
