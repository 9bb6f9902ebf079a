"""``POST /v1/agent/runs``: one agent run on the server's device, through its scheduler (docs/agent.md).

Request: ``{"goal": "...", "max_steps": 6, "dry_run": false, "confirm": ["led"], "stream": false,
"background": false}``. ``confirm`` names the actuators whose confirmation the caller gives with the
request. A plain request waits for the run and answers the ``AgentResult`` as JSON (``status``,
``answer``, every step); the policy's ``confirm`` actuators not named are refused. With ``stream``
or ``background`` the run asks during the run instead (``edge_os.api.agent_live``). Runs are
serialised: one device, one policy state.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from typing import Any

from edge_os.agent import Agent, AgentTool, AuditLog, Policy
from edge_os.agent.commands import ActuatorGate
from edge_os.agent.loop import Confirm, state_from_audit
from edge_os.agent.model import SchedulerModel
from edge_os.api.errors import bad_request

MAX_GOAL_CHARS = 4000
MAX_STEPS = 20


@dataclasses.dataclass(frozen=True)
class RunRequest:
    goal: str
    max_steps: int = 6
    dry_run: bool = False
    confirm: frozenset[str] = frozenset()
    stream: bool = False  # server-sent events, asking confirmations during the run
    background: bool = False  # answered at once; polled at GET /v1/agent/runs/{id}


def parse_run(data: dict[str, Any]) -> RunRequest:
    fields = ("goal", "max_steps", "dry_run", "confirm", "stream", "background")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise bad_request(f"unknown field(s) {unknown}; use {', '.join(fields)}", unknown[0])
    goal = data.get("goal")
    if not isinstance(goal, str) or not goal.strip() or len(goal) > MAX_GOAL_CHARS:
        raise bad_request(f'"goal" must be a non-empty string of at most {MAX_GOAL_CHARS} characters', "goal")
    steps = data.get("max_steps", 6)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise bad_request(f'"max_steps" must be an integer from 1 to {MAX_STEPS}', "max_steps")
    flags = {}
    for name in ("dry_run", "stream", "background"):
        flags[name] = data.get(name, False)
        if not isinstance(flags[name], bool):
            raise bad_request(f'"{name}" must be true or false', name, "invalid_type")
    confirm = data.get("confirm", [])
    if not isinstance(confirm, list) or not all(isinstance(c, str) for c in confirm):
        raise bad_request('"confirm" must be a list of actuator names', "confirm", "invalid_type")
    return RunRequest(goal, steps, flags["dry_run"], frozenset(confirm), flags["stream"], flags["background"])


class AgentRuns:
    """The agent a server runs: its device's tools, its policy and its audit log; ``cloud`` (an
    ``edge_os.api.cloud.CloudRoute``) answers the turns the scheduler refuses in a way the fallback
    policy allows, each recorded as a ``cloud_fallback`` entry.

    ``device`` (the ``firmware_bridge.Device`` the tools drive) lets other front doors command its
    actuators through ``gate()``: the same policy, audit log, policy state and lock as the runs."""

    def __init__(self, tools: list[AgentTool], policy: Policy, audit: AuditLog, model=None, cloud=None,
                 device=None) -> None:
        self.tools, self.policy, self.audit = tools, policy, audit
        self.model = model  # a ChatModel to use instead of the scheduler (tests script one)
        self.cloud = cloud
        self.device = device
        self.state = state_from_audit(audit)  # one state for every run and gate: limits hold across them
        self.acting = threading.Lock()
        self._lock = threading.Lock()

    def gate(self) -> ActuatorGate:
        """Commands for ``device``'s actuators from outside a run, under this agent's policy."""
        if self.device is None:
            raise ValueError("these agent runs have no device to command")
        return ActuatorGate(self.device, self.policy, self.audit, self.state, self.acting)

    def run(self, scheduler, request: RunRequest, confirm: Confirm | None = None, *, run_id: str | None = None,
            on_entry: Callable[[str, dict], None] | None = None,
            origin: dict[str, str] | None = None) -> dict[str, Any]:
        """One run. The request's ``confirm`` list answers yes for its actuators; the others are
        asked through ``confirm`` (MQTT, a live HTTP run), and refused without it. ``on_entry``
        hears every audit entry of the run as it is written (a live run streams them). ``origin``
        (``{"via": "http" | "mqtt", "requester": ...}``) goes into the run's ``run`` entry, so the
        audit log says who started each run (``AuditLog.runs``)."""
        confirmed = {t.name for t in self.tools if t.actuator in request.confirm}

        def ask(question: str, timeout: float) -> bool:
            if question.split(" ", 1)[0] in confirmed:  # the question starts with the tool's name
                return True
            return confirm(question, timeout) if confirm is not None else False

        run_id = run_id or uuid.uuid4().hex[:12]
        audit = _Told(self.audit, on_entry, origin or {})

        def fell_back(refused) -> None:
            audit.append("cloud_fallback", {"reason": refused.code, "detail": refused.reason}, run_id)

        model = self.model or SchedulerModel(scheduler, cloud=self.cloud, on_fallback=fell_back)
        policy = dataclasses.replace(self.policy, dry_run=True) if request.dry_run else self.policy
        with self._lock:
            agent = Agent(model, self.tools, policy, audit, confirm=ask, max_steps=request.max_steps,
                          call_first=bool(self.tools), state=self.state, acting_lock=self.acting)
            return agent.run(request.goal, run_id).to_dict()


class _Told:
    """An audit log that adds ``origin`` to the run's ``run`` entry and tells ``listener`` (if any)
    of each entry appended."""

    def __init__(self, audit: AuditLog, listener: Callable[[str, dict], None] | None, origin: dict[str, str]) -> None:
        self._audit, self._listener, self._origin = audit, listener, origin

    def append(self, kind: str, data: dict, run: str = ""):
        if kind == "run" and self._origin:
            data = {**data, **self._origin}
        entry = self._audit.append(kind, data, run)
        if self._listener is not None:
            self._listener(kind, data)
        return entry

    def __getattr__(self, name: str):
        return getattr(self._audit, name)
