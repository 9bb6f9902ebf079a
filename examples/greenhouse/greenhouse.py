#!/usr/bin/env python3
"""A greenhouse controller on the firmware simulator: the model reads temperature, humidity and light
and drives the fan, grow light and heater relay, under policy.toml, into an audit log.

    make -C firmware_bridge BUILD=/tmp/sim sim && /tmp/sim/edge-bridge-sim --journal /tmp/journal.jsonl &
    .venv/bin/python examples/greenhouse/greenhouse.py /dev/pts/N "It is getting dark; turn on the grow light"

The first line the simulator prints is its pty. Without a goal, a few typical ones run in turn.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge_os.agent import Agent, AuditLog, Policy, from_device, tool
from edge_os.default_model import default_package
from edge_os.runtime.engine import Engine
from firmware_bridge import Device

HERE = Path(__file__).resolve().parent
GOALS = ["How warm is the greenhouse?", "It is getting dark; turn on the grow light.",
         "Set the fan to 80.", "Run the fan at 255."]


@tool
def hour_of_day() -> int:
    """The local hour of the day, 0 to 23."""
    return time.localtime().tm_hour


def ask(question: str, timeout: float) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # no terminal: no
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", help="the simulator's pty (or a real board's port)")
    parser.add_argument("goal", nargs="?", help="what to do (default: a few typical goals)")
    parser.add_argument("--audit", default="greenhouse-audit.jsonl", help="the audit log to append to")
    args = parser.parse_args()

    policy = Policy.load(HERE / "policy.toml")
    audit = AuditLog(args.audit, retention_days=policy.audit_retention_days)
    engine = Engine.load(default_package())
    with Device.open(args.port) as device:
        # call_first: the first turn must be a tool call; the bundled 135M model otherwise tends to
        # answer without looking (docs/agent.md has the figures).
        agent = Agent(engine, [*from_device(device), hour_of_day], policy, audit, confirm=ask, call_first=True)
        for goal in [args.goal] if args.goal else GOALS:
            result = agent.run(goal)
            print(f"\n> {goal}")
            for step in result.steps:
                if step.tool:
                    print(f"  {step.tool} {step.arguments} -> {step.status}: {step.result}")
            acted = sum(1 for s in result.actuations if s.status == "ok")
            print(f"  {result.status}: {result.answer!r} (actuations acknowledged: {acted})")
    print(f"\naudit log {args.audit}: {'intact' if not audit.verify() else 'BROKEN'}")


if __name__ == "__main__":
    main()
