"""The agent on a real engine whose tiny model has random weights: whatever calls come out are the
grammar's doing. Under the grammar every turn is a call to a tool that exists with valid arguments,
or an answer; whatever the calls, only what the policy allows reaches the simulator. Then the same
through the real scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_os.agent import Agent, AuditLog, Policy, from_device
from edge_os.agent.model import EngineModel
from edge_os.runtime.request import SamplingParams
from firmware_bridge import Device

from ..firmware_bridge.sim import Simulator
from .conftest import CONTEXT

pytest.importorskip("xgrammar")

POLICY = Policy.from_dict({"actuators": {"fan": {"min": 10, "max": 100, "max_per_minute": 3, "max_step": 50},
                                         "led": {}}})


@pytest.fixture(scope="module")
def engine(long_tiny_package):
    from edge_os.runtime.engine import Engine

    eng = Engine.load(long_tiny_package, threads=1, context_tokens=CONTEXT, max_batch=1)
    yield eng
    eng.close()


def tools(device: Device) -> list:
    """Two tools: a short listing keeps the tiny model's prompts short."""
    return [t for t in from_device(device) if t.name in ("set_fan", "set_led")]


def check_run(result, sim: Simulator, audit: AuditLog) -> None:
    for step in result.steps:  # no unknown tool, no arguments outside the schema; only calls cut short
        assert step.status != "error" or step.tool is None and "cut short" in step.result["error"], step
    assert all(c["actuator"] in ("fan", "led") for c in sim.commands())
    assert all(10 <= c["value"] <= 100 for c in sim.commands() if c["actuator"] == "fan")
    assert audit.verify() == []


@pytest.mark.parametrize("style", ["json", "tags"])
def test_random_weights_under_the_grammar_only_make_valid_calls(engine, device: Device, sim: Simulator,
                                                                 audit: AuditLog, style: str) -> None:
    calls = 0
    for seed in range(4):
        model = EngineModel(engine, SamplingParams(temperature=1.0, seed=seed))
        result = Agent(model, tools(device), POLICY, audit, max_steps=3, max_tokens=64, style=style).run("fan")
        check_run(result, sim, audit)
        calls += sum(1 for s in result.steps if s.tool is not None and s.status != "error")
    if style == "json":  # a JSON turn that is not an answer is a call; random weights pick both
        assert calls > 0


def test_through_the_scheduler(long_tiny_package, device: Device, sim: Simulator, audit: AuditLog,
                               tmp_path: Path) -> None:
    from edge_os.scheduler.catalog import Catalog, package_entry
    from edge_os.scheduler.config import SchedulerConfig
    from edge_os.scheduler.loop import Scheduler
    from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
    from tests.simulated_sysfs import SimulatedDevice

    board = SimulatedDevice(tmp_path / "dev")
    config = SchedulerConfig(budget_bytes=2 << 30, threads=1)
    catalog = Catalog([package_entry(long_tiny_package, context_tokens=CONTEXT, max_batch=1)])
    scheduler = Scheduler(catalog, config, MemoryProbe(), ThermalProbe(board.thermal_dir),
                          PowerProbe(board.power_dir))
    with scheduler.start():
        result = Agent(scheduler, tools(device), POLICY, audit, max_steps=2, max_tokens=32).run("fan")
    assert result.steps and result.status in ("answered", "max_steps", "loop")
    check_run(result, sim, audit)
