"""Agent runs that ask during the run over HTTP (SSE and polling), and a hot device's turns answered
by the cloud: a real uvicorn server, a real HTTP client, the real scheduler, the simulator on a pty
as the device. Only the model's choice of calls is scripted (``ScriptedModel``) in the confirmation
tests; the cloud is the OpenAI-compatible stub server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge_os.agent import AuditLog, Policy, from_device
from edge_os.api.agent_runs import AgentRuns
from edge_os.api.config import HttpConfig
from edge_os.api.front_door import HttpFrontDoor
from firmware_bridge import Device
from tests.integration.openai_stub import OpenAIStub

from ..firmware_bridge.sim import Simulator
from .conftest import CONTEXT
from .scripted_model import ScriptedModel, call

pytest.importorskip("starlette")

KEYS = frozenset({"key-a", "key-b"})
A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}


@pytest.fixture
def board(tmp_path: Path):
    from tests.simulated_sysfs import SimulatedDevice

    return SimulatedDevice(tmp_path / "dev")


@pytest.fixture
def serve(long_tiny_package: Path, board, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``serve(agent_runs, **http_config) -> url``: the HTTP front door (keys A and B) over a real scheduler."""
    from edge_os.scheduler.catalog import Catalog, package_entry
    from edge_os.scheduler.config import SchedulerConfig
    from edge_os.scheduler.loop import Scheduler
    from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe

    scheduler = Scheduler(Catalog([package_entry(long_tiny_package, context_tokens=CONTEXT, max_batch=1)]),
                          SchedulerConfig(budget_bytes=2 << 30, threads=1), MemoryProbe(),
                          ThermalProbe(board.thermal_dir), PowerProbe(board.power_dir))
    doors: list[HttpFrontDoor] = []

    def start(agent: AgentRuns, **config) -> str:
        door = HttpFrontDoor(HttpConfig(port=0, packages=(long_tiny_package,), api_keys=KEYS, **config), agent=agent)
        door.start(scheduler)
        doors.append(door)
        return door.url

    with scheduler.start():
        yield start
        for door in doors:
            door.stop()


def fan_agent(device: Device, audit: AuditLog, turns: list, timeout_s: float = 30.0) -> AgentRuns:
    tools = [t for t in from_device(device) if t.name in ("set_fan", "read_light")]
    policy = Policy.from_dict({"confirm_timeout_s": timeout_s, "actuators": {"fan": {"max": 50, "confirm": True}}})
    return AgentRuns(tools, policy, audit, model=ScriptedModel(turns))


def stream_events(url: str, body: dict, headers: dict, on_event: Callable[[dict], None] | None = None) -> list[dict]:
    """Every event of a streamed run, in order; ``on_event`` sees each as it arrives."""
    events = []
    with httpx.stream("POST", f"{url}/v1/agent/runs", json={**body, "stream": True}, headers=headers,
                      timeout=120) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line.removeprefix("data: ")))
                if on_event is not None:
                    on_event(events[-1])
    return events


def answer_with(url: str, headers: dict, answer: str) -> Callable[[dict], None]:
    def on_event(event: dict) -> None:
        if event["type"] == "confirmation_required":
            reply = httpx.post(f"{url}{event['answer_at']}", json={"answer": answer}, headers=headers, timeout=30)
            assert reply.status_code == 200, reply.text
    return on_event


def test_a_confirmation_answered_yes_during_a_streamed_run(serve, device: Device, sim: Simulator,
                                                          audit: AuditLog) -> None:
    url = serve(fan_agent(device, audit, [call("set_fan", value=30)]))
    events = stream_events(url, {"goal": "fan to 30"}, A, answer_with(url, A, "yes"))
    kinds = [e["type"] for e in events]
    asked = events[kinds.index("confirmation_required")]
    assert asked["tool"] == "set_fan" and asked["arguments"] == {"value": 30}
    assert kinds.index("confirmation_required") < kinds.index("confirmation") < kinds.index("actuation")
    assert kinds[-1] == "run_finished" and events[-1]["run"]["steps"][0]["status"] == "ok"
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 30)]
    assert [e["data"]["answer"] for e in audit.entries() if e["kind"] == "confirmation"] == ["yes"]


def test_a_confirmation_answered_no_while_polled(serve, device: Device, sim: Simulator, audit: AuditLog) -> None:
    url = serve(fan_agent(device, audit, [call("set_fan", value=30)]))
    started = httpx.post(f"{url}/v1/agent/runs", json={"goal": "fan to 30", "background": True}, headers=A,
                         timeout=30)
    assert started.status_code == 202, started.text
    run_url = f"{url}/v1/agent/runs/{started.json()['id']}"
    run = wait_for(lambda: httpx.get(run_url, headers=A, timeout=30).json(),
                   lambda r: r["status"] == "requires_action")
    [asked] = run["required_action"]["confirmations"]
    assert asked["tool"] == "set_fan"
    # Another key's client sees no such run and cannot answer for it.
    assert httpx.get(run_url, headers=B, timeout=30).status_code == 404
    assert httpx.post(f"{url}{asked['answer_at']}", json={"answer": "yes"}, headers=B, timeout=30).status_code == 404
    assert httpx.post(f"{url}{asked['answer_at']}", json={"answer": "no"}, headers=A, timeout=30).status_code == 200
    run = wait_for(lambda: httpx.get(run_url, headers=A, timeout=30).json(), lambda r: r["status"] == "completed")
    assert run["result"]["steps"][0]["status"] == "refused"
    assert sim.commands() == []
    assert [e["kind"] for e in audit.entries() if e["kind"] in ("confirmation", "refusal")] == ["confirmation",
                                                                                                "refusal"]


def test_no_answer_in_time_is_no(serve, device: Device, sim: Simulator, audit: AuditLog) -> None:
    url = serve(fan_agent(device, audit, [call("set_fan", value=30)], timeout_s=1.0))
    events = stream_events(url, {"goal": "fan to 30"}, A)  # asked, never answered
    asked = next(e for e in events if e["type"] == "confirmation_required")
    assert events[-1]["run"]["steps"][0]["status"] == "refused"
    assert "timeout" in events[-1]["run"]["steps"][0]["result"]["refused"]
    assert sim.commands() == []
    refusals = [e["data"] for e in audit.entries() if e["kind"] == "refusal"]
    assert len(refusals) == 1 and "timeout" in refusals[0]["reason"]
    late = httpx.post(f"{url}{asked['answer_at']}", json={"answer": "yes"}, headers=A, timeout=30)
    assert late.status_code == 404 and late.json()["error"]["code"] == "confirmation_not_found"
    assert sim.commands() == []


def test_unknown_runs_and_confirmations_are_404(serve, device: Device, audit: AuditLog) -> None:
    url = serve(fan_agent(device, audit, []))
    for method, path, body in (("GET", "/v1/agent/runs/nope", None),
                               ("POST", "/v1/agent/runs/nope/confirmations/nope", {"answer": "yes"})):
        answer = httpx.request(method, f"{url}{path}", json=body, headers=A, timeout=30)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error["type"] == "not_found_error" and error["code"] == "run_not_found" and "nope" in error["message"]
    done = httpx.post(f"{url}/v1/agent/runs", json={"goal": "light?", "background": True}, headers=A, timeout=30)
    run_url = f"{url}/v1/agent/runs/{done.json()['id']}"
    wait_for(lambda: httpx.get(run_url, headers=A, timeout=30).json(), lambda r: r["status"] == "completed")
    wrong = httpx.post(f"{run_url}/confirmations/nope", json={"answer": "yes"}, headers=A, timeout=30)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "confirmation_not_found"
    bad = httpx.post(f"{run_url}/confirmations/nope", json={"answer": "maybe"}, headers=A, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "answer"


def test_the_up_front_confirm_list_still_confirms(serve, device: Device, sim: Simulator, audit: AuditLog) -> None:
    url = serve(fan_agent(device, audit, [call("set_fan", value=30)]))
    run = httpx.post(f"{url}/v1/agent/runs", json={"goal": "fan to 30", "confirm": ["fan"]}, headers=A, timeout=60)
    assert run.status_code == 200 and run.json()["steps"][0]["status"] == "ok"
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 30)]


def test_background_runs_are_capped_with_a_429(serve, device: Device, sim: Simulator, audit: AuditLog) -> None:
    """A client cannot pile up runs: past ``max_agent_runs`` unfinished live runs (any key) a new one
    is refused with 429 ``too_many_runs`` and one line saying what to do; once one ends, it is taken."""
    url = serve(fan_agent(device, audit, [call("set_fan", value=30)]), max_agent_runs=2)
    first = httpx.post(f"{url}/v1/agent/runs", json={"goal": "fan to 30", "background": True}, headers=A, timeout=30)
    assert first.status_code == 202, first.text
    run_url = f"{url}/v1/agent/runs/{first.json()['id']}"
    asked = wait_for(lambda: httpx.get(run_url, headers=A, timeout=30).json(),
                     lambda r: r["status"] == "requires_action")["required_action"]["confirmations"][0]
    second = httpx.post(f"{url}/v1/agent/runs", json={"goal": "light?", "background": True}, headers=B, timeout=30)
    assert second.status_code == 202, second.text  # waits behind the first (runs are serialised)
    third = httpx.post(f"{url}/v1/agent/runs", json={"goal": "light?", "stream": True}, headers=A, timeout=30)
    assert third.status_code == 429 and third.headers["retry-after"]
    error = third.json()["error"]
    assert error["code"] == "too_many_runs" and "2" in error["message"] and "\n" not in error["message"]
    assert httpx.post(f"{url}{asked['answer_at']}", json={"answer": "no"}, headers=A, timeout=30).status_code == 200
    wait_for(lambda: httpx.get(f"{url}/v1/agent/runs/{second.json()['id']}", headers=B, timeout=30).json(),
             lambda r: r["status"] == "completed")
    fourth = httpx.post(f"{url}/v1/agent/runs", json={"goal": "light?", "background": True}, headers=A, timeout=30)
    assert fourth.status_code == 202, fourth.text
    assert sim.commands() == []
    assert {run["via"] for run in audit.runs()} == {"http"}


# --- a hot device: the agent's turns go to the cloud ----------------------------------------------

def cloud_call(name: str, **arguments: object) -> str:
    """A goal the stub cloud answers with this call (it answers the last message's words reversed,
    so a goal of one word comes back whole)."""
    text = call(name, **arguments).replace(" ", "")
    assert " " not in text
    return text


@pytest.mark.parametrize("value, acted", [(30, True), (90, False)])
def test_a_hot_device_falls_back_to_the_cloud_under_the_policy(serve, board, device: Device, sim: Simulator,
                                                               audit: AuditLog, value: int, acted: bool) -> None:
    from edge_os.api.cloud import CloudConfig, CloudRoute

    stub = OpenAIStub()
    try:
        tools = [t for t in from_device(device) if t.name in ("set_fan", "read_light")]
        agent = AgentRuns(tools, Policy.from_dict({"actuators": {"fan": {"max": 50}}}), audit,
                          cloud=CloudRoute(CloudConfig(stub.url, model="cloud-model")))
        url = serve(agent)
        make_hot(board, url)
        answer = httpx.post(f"{url}/v1/agent/runs", json={"goal": cloud_call("set_fan", value=value),
                                                          "max_steps": 2}, headers=A, timeout=120)
        assert answer.status_code == 200, answer.text
        run = answer.json()
        first = run["steps"][0]
        assert first["tool"] == "set_fan" and first["arguments"] == {"value": value}
        assert first["status"] == ("ok" if acted else "refused")
        assert [(c["actuator"], c["value"]) for c in sim.commands()] == ([("fan", value)] if acted else [])
        fallbacks = [e for e in audit.entries() if e["kind"] == "cloud_fallback"]
        assert fallbacks and {e["run"] for e in fallbacks} == {run["run_id"]}
        assert {e["data"]["reason"] for e in fallbacks} == {"too_hot"}
        assert len(fallbacks) == len(stub.requests)  # every cloud turn is in the audit log
        assert {body["model"] for body in stub.requests} == {"cloud-model"}
        assert all("response_format" not in body for body in stub.requests)  # no grammar in the cloud
        if not acted:
            assert [e["kind"] for e in audit.entries() if e["kind"] == "refusal"] == ["refusal"]
        assert audit.verify() == []
    finally:
        stub.close()


def test_a_hot_device_without_a_cloud_ends_the_run_saying_why(serve, board, device: Device, sim: Simulator,
                                                              audit: AuditLog) -> None:
    tools = [t for t in from_device(device) if t.name == "set_fan"]
    url = serve(AgentRuns(tools, Policy.from_dict({"actuators": {"fan": {"max": 50}}}), audit))
    make_hot(board, url)
    run = httpx.post(f"{url}/v1/agent/runs", json={"goal": "fan"}, headers=A, timeout=120).json()
    assert run["status"] == "model_error" and "refused" in run["steps"][-1]["result"]["error"]
    assert sim.commands() == []
    assert not [e for e in audit.entries() if e["kind"] == "cloud_fallback"]


def make_hot(board, url: str) -> None:
    board.model.temp_c = 95.0
    board.flush()
    wait_for(lambda: httpx.get(f"{url}/ready", headers=A, timeout=30).json().get("error", {}).get("code"),
             lambda code: code == "throttled")


def wait_for(read: Callable[[], object], done: Callable[[object], bool], timeout: float = 60.0):
    """Read until ``done`` holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value):
        assert time.monotonic() < deadline, f"still {value!r} after {timeout} s"
        threading.Event().wait(0.05)
        value = read()
    return value
