"""``POST /v1/agent/runs``: one agent run on the server's device, through its scheduler (docs/agent.md).

Request: ``{"goal": "...", "max_steps": 6, "dry_run": false, "confirm": ["led"]}``. ``confirm``
names the actuators whose confirmation the caller gives with the request (the policy's
``confirm`` actuators not named are refused: an HTTP request cannot be asked a question half-way).
Answer: the ``AgentResult`` as JSON (``status``, ``answer``, every step). Runs are serialised:
one device, one policy state.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from edge_os.agent import Agent, AgentTool, AuditLog, Policy
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


def parse_run(data: dict[str, Any]) -> RunRequest:
    unknown = sorted(set(data) - {"goal", "max_steps", "dry_run", "confirm"})
    if unknown:
        raise bad_request(f"unknown field(s) {unknown}; use goal, max_steps, dry_run, confirm", unknown[0])
    goal = data.get("goal")
    if not isinstance(goal, str) or not goal.strip() or len(goal) > MAX_GOAL_CHARS:
        raise bad_request(f'"goal" must be a non-empty string of at most {MAX_GOAL_CHARS} characters', "goal")
    steps = data.get("max_steps", 6)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise bad_request(f'"max_steps" must be an integer from 1 to {MAX_STEPS}', "max_steps")
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise bad_request('"dry_run" must be true or false', "dry_run", "invalid_type")
    confirm = data.get("confirm", [])
    if not isinstance(confirm, list) or not all(isinstance(c, str) for c in confirm):
        raise bad_request('"confirm" must be a list of actuator names', "confirm", "invalid_type")
    return RunRequest(goal, steps, dry_run, frozenset(confirm))


class AgentRuns:
    """The agent a server runs: its device's tools, its policy and its audit log."""

    def __init__(self, tools: list[AgentTool], policy: Policy, audit: AuditLog) -> None:
        self.tools, self.policy, self.audit = tools, policy, audit
        self._lock = threading.Lock()

    def run(self, scheduler, request: RunRequest) -> dict[str, Any]:
        confirmed = {t.name for t in self.tools if t.actuator in request.confirm}

        def confirm(question: str, timeout: float) -> bool:
            return question.split(" ", 1)[0] in confirmed  # the question starts with the tool's name

        policy = dataclasses.replace(self.policy, dry_run=True) if request.dry_run else self.policy
        with self._lock:
            agent = Agent(SchedulerModel(scheduler), self.tools, policy, self.audit, confirm=confirm,
                          max_steps=request.max_steps, call_first=bool(self.tools))
            return agent.run(request.goal).to_dict()
