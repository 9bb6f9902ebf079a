"""POST /v1/agent/runs on the real HTTP front door (uvicorn, a real HTTP client), with the real
scheduler serving the tiny model and the simulator on a pty as the device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_os.agent import AuditLog, Policy, from_device
from edge_os.api.agent_runs import AgentRuns
from edge_os.api.config import HttpConfig
from edge_os.api.front_door import HttpFrontDoor
from firmware_bridge import Device

from ..firmware_bridge.sim import Simulator
from .conftest import CONTEXT

pytest.importorskip("xgrammar")
pytest.importorskip("starlette")


@pytest.fixture
def server(long_tiny_package: Path, device: Device, audit: AuditLog, tmp_path: Path) -> Iterator[str]:
    from edge_os.scheduler.catalog import Catalog, package_entry
    from edge_os.scheduler.config import SchedulerConfig
    from edge_os.scheduler.loop import Scheduler
    from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
    from tests.simulated_sysfs import SimulatedDevice

    board = SimulatedDevice(tmp_path / "dev")
    scheduler = Scheduler(Catalog([package_entry(long_tiny_package, context_tokens=CONTEXT, max_batch=1)]),
                          SchedulerConfig(budget_bytes=2 << 30, threads=1), MemoryProbe(),
                          ThermalProbe(board.thermal_dir), PowerProbe(board.power_dir))
    tools = [t for t in from_device(device) if t.name in ("set_fan", "read_light")]
    policy = Policy.from_dict({"actuators": {"fan": {"max": 50}}})
    door = HttpFrontDoor(HttpConfig(port=0, packages=(long_tiny_package,)), agent=AgentRuns(tools, policy, audit))
    with scheduler.start():
        door.start(scheduler)
        try:
            yield door.url
        finally:
            door.stop()


def test_an_agent_run_over_http(server: str, sim: Simulator, audit: AuditLog) -> None:
    answer = httpx.post(f"{server}/v1/agent/runs", json={"goal": "fan", "max_steps": 2}, timeout=300)
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["goal"] == "fan" and run["status"] in ("answered", "max_steps", "loop")
    assert run["steps"][0]["tool"] in ("set_fan", "read_light")  # the first turn must be a call
    assert all(c["actuator"] == "fan" and c["value"] <= 50 for c in sim.commands())
    assert [e["run"] for e in audit.entries() if e["kind"] == "run"] == [run["run_id"]]
    assert audit.verify() == []


@pytest.mark.parametrize("body, param", [({"goal": ""}, "goal"), ({"goal": "x", "max_steps": 99}, "max_steps"),
                                         ({"goal": "x", "confirm": "fan"}, "confirm"), ({"goal": "x", "y": 1}, "y"),
                                         ({"goal": "x", "stream": "yes"}, "stream")])
def test_bad_agent_requests(server: str, body: dict, param: str, sim: Simulator) -> None:
    answer = httpx.post(f"{server}/v1/agent/runs", json=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param
    assert sim.commands() == []
