"""The agent loop: the model proposes, the policy disposes, the audit log remembers.

Each turn is decoded under a grammar (``edge_os.agent.turns``): a final answer, or a call naming a
tool that exists with arguments that fit its schema. Every call is checked again here (a model without the
grammar, or a hostile one, can write anything); an acting call must pass the policy, and maybe a
person, before anything goes on the wire. Whatever happens comes back to the model as the tool's
result and is recorded as a ``Step``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_os.agent.audit import AuditLog
from edge_os.agent.model import as_model
from edge_os.agent.policy import Decision, Policy, PolicyState, check
from edge_os.agent.tools import AgentTool, check_arguments, relevant
from edge_os.agent.turns import TurnFormat
from edge_os.errors import EdgeOSError
from edge_os.runtime.tools import Tool

# A confirmation callback: (question, timeout in seconds) -> yes?  (None: no answer came in time.)
# It may also be a coroutine function.
Confirm = Callable[[str, float], Any]


@dataclass
class Step:
    """One thing that happened: a tool call and its outcome, or the final answer.

    ``status``: ``ok``, ``error`` (unknown tool, bad arguments, the tool failed), ``refused`` (policy
    or person said no), ``dry_run``, ``failed`` (an actuation that was not acknowledged), ``answer``.
    """

    index: int
    status: str
    tool: str | None = None
    arguments: Any = None
    result: Any = None
    model_text: str = ""
    model_s: float = 0.0
    tool_s: float = 0.0


@dataclass
class AgentResult:
    """A finished run. ``status``: ``answered``, ``max_steps``, ``loop`` (the same call over and
    over), ``device_lost`` (a device stopped answering) or ``model_error`` (the model could not take
    a turn: the conversation outgrew its context, the scheduler refused)."""

    run_id: str
    goal: str
    status: str
    answer: str | None
    steps: list[Step] = field(default_factory=list)

    @property
    def actuations(self) -> list[Step]:
        return [s for s in self.steps if s.status in ("ok", "failed", "dry_run") and s.result
                and isinstance(s.result, dict) and "actuator" in s.result]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "goal": self.goal, "status": self.status, "answer": self.answer,
                "steps": [asdict(s) for s in self.steps]}


class _DeviceLost(Exception):
    pass


class Agent:
    """``Agent(model_or_scheduler, tools, policy, audit).run(goal)``.

    ``confirm`` answers the questions of actuators the policy marks ``confirm``; without one, or
    without an answer within the policy's ``confirm_timeout_s``, the answer is no. ``style`` is the
    turn format (``json`` or ``tags``, see ``edge_os.agent.turns``); ``grammar=False`` decodes
    freely (for measuring what the grammar is worth); ``call_first`` makes the first turn a call
    (a goal for a device needs a reading or an action before any answer). ``clock`` times the rate limits.
    ``state`` (default: rebuilt from ``audit``) and ``acting_lock`` may be shared with an
    ``edge_os.agent.commands.ActuatorGate`` so that its commands and this agent's count together.
    """

    def __init__(self, model_or_scheduler, tools: Iterable[AgentTool], policy: Policy | None = None,
                 audit: AuditLog | None = None, *, confirm: Confirm | None = None, max_steps: int = 6,
                 max_tools: int = 8, max_tokens: int = 96, grammar: bool = True, style: str = "json",
                 call_first: bool = False,
                 state: PolicyState | None = None, clock: Callable[[], float] = time.time,
                 acting_lock: threading.Lock | None = None) -> None:
        self.model = as_model(model_or_scheduler)
        self.tools = {t.name: t for t in tools}
        self.policy = policy or Policy()
        self.audit = audit
        self.confirm = confirm
        self.max_steps, self.max_tools, self.max_tokens, self.grammar = max_steps, max_tools, max_tokens, grammar
        self.clock = clock
        self.style, self.call_first = style, call_first
        self.state = state if state is not None else state_from_audit(audit)
        self._loop: asyncio.AbstractEventLoop | None = None
        # check-then-send is one step, even for runs in parallel (and, with a shared ``acting_lock``
        # and ``state``, for commands from elsewhere: edge_os.agent.commands)
        self._acting = acting_lock if acting_lock is not None else threading.Lock()

    # --- the loop ----------------------------------------------------------------------------
    def prompt(self, goal: str) -> tuple[TurnFormat, list[dict]]:
        """The turn format (with the tools offered for ``goal``) and the opening messages."""
        offered = relevant(self.tools.values(), goal, self.max_tools)
        turns = TurnFormat(self.style, tuple(Tool(t.name, t.description, t.parameters) for t in offered))
        return turns, [turns.system_message(), {"role": "user", "content": goal}]

    def run(self, goal: str, run_id: str | None = None) -> AgentResult:
        """Work on ``goal`` until the model answers, ``max_steps`` turns pass or the run cannot go on
        (``run_id``: the run's id in the audit log; default: a new one)."""
        result, use, messages = self._start(goal, run_id)
        for turn in range(self.max_steps):
            started = time.perf_counter()
            try:
                text = self.model.turn(messages, self._constraint(use, turn), self.max_tokens)
            except EdgeOSError as exc:
                self._model_failed(result, exc)
                break
            if self._after_turn(result, use, messages, text, time.perf_counter() - started):
                break
        return self._finish(result)

    async def arun(self, goal: str, run_id: str | None = None) -> AgentResult:
        """``run`` for asyncio: model turns and tool calls run on worker threads; ``confirm`` may be
        a coroutine function, awaited on this loop."""
        self._loop = asyncio.get_running_loop()
        result, use, messages = self._start(goal, run_id)
        for turn in range(self.max_steps):
            started = time.perf_counter()
            try:
                text = await asyncio.to_thread(self.model.turn, messages, self._constraint(use, turn), self.max_tokens)
            except EdgeOSError as exc:
                self._model_failed(result, exc)
                break
            done = await asyncio.to_thread(self._after_turn, result, use, messages, text,
                                           time.perf_counter() - started)
            if done:
                break
        return self._finish(result)

    def _start(self, goal: str, run_id: str | None = None) -> tuple[AgentResult, TurnFormat, list[dict]]:
        result = AgentResult(run_id or uuid.uuid4().hex[:12], goal, "max_steps", None)
        use, messages = self.prompt(goal)
        self._record(result, "run", {"goal": goal, "tools": [t.name for t in use.tools],
                                     "dry_run": self.policy.dry_run})
        return result, use, messages

    def _constraint(self, use: TurnFormat, turn: int):
        if not self.grammar:
            return None
        return use.constraint(require_call=self.call_first and turn == 0)

    def _model_failed(self, result: AgentResult, exc: EdgeOSError) -> None:
        """The model could not take its turn (the conversation outgrew the context, the scheduler
        refused): the run ends there, as a step."""
        result.status = "model_error"
        result.steps.append(Step(len(result.steps), "error", result={"error": str(exc)}))

    def _finish(self, result: AgentResult) -> AgentResult:
        self._record(result, "answer", {"status": result.status, "answer": result.answer})
        return result

    def _after_turn(self, result: AgentResult, use: TurnFormat, messages: list[dict], text: str,
                    model_s: float) -> bool:
        """Act on one model turn; True when the run is over."""
        answer, calls = use.parse(text)
        if not calls:
            result.answer = answer
            result.status = "answered"
            result.steps.append(Step(len(result.steps), "answer", model_text=text, model_s=model_s))
            return True
        messages.append({"role": "assistant", "content": text})
        for name, arguments in calls:
            started = time.perf_counter()
            try:
                status, outcome = self._execute(result, name, arguments)
            except _DeviceLost as exc:
                status, outcome = "failed", {"ok": False, "error": str(exc)}
                result.status = "device_lost"
            step = Step(len(result.steps), status, name, arguments, outcome, text, model_s,
                        time.perf_counter() - started)
            result.steps.append(step)
            messages.append({"role": "tool", "content": json.dumps(outcome, ensure_ascii=False)})
            if result.status == "device_lost":
                return True
        if _looping(result.steps):
            result.status = "loop"
            return True
        return False

    # --- one call ----------------------------------------------------------------------------
    def _execute(self, result: AgentResult, name: Any, arguments: Any) -> tuple[str, Any]:
        if name is None:
            outcome = {"error": "that is not a complete call (cut short, or malformed); write "
                                '{"name": TOOL, "arguments": {...}}'}
            self._record(result, "tool_call", {"tool": None, "text": str(arguments)[:500], "error": outcome["error"]})
            return "error", outcome
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            outcome = {"error": f"there is no tool {name!r}; the tools are {sorted(self.tools)}"}
            self._record(result, "tool_call", {"tool": name, "arguments": arguments, "error": outcome["error"]})
            return "error", outcome
        problem = check_arguments(tool.parameters, arguments)
        if problem:
            outcome = {"error": f"bad arguments for {name}: {problem}"}
            self._record(result, "tool_call", {"tool": name, "arguments": arguments, "error": outcome["error"]})
            return "error", outcome
        if tool.acting:
            with self._acting:
                return self._act(result, tool, arguments)
        return self._call(result, tool, arguments, "tool_call")

    def _act(self, result: AgentResult, tool: AgentTool, arguments: dict) -> tuple[str, Any]:
        value = arguments.get("value") if tool.actuator else None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
            arguments = {**arguments, "value": value}
        decision = check(self.policy, self.state, tool.actuator, tool.name, value, self.clock())
        if decision.allowed and tool.actuator and self._set_in_run(result, tool.actuator) == value:
            # Small models repeat themselves: a value this run already got acknowledged is not sent again.
            decision = Decision(False, f"{tool.actuator} was already set to {value} in this run (acknowledged); "
                                       "not sent again")
        if decision.allowed and decision.confirm:
            answer = self._ask(f"{tool.name} {json.dumps(arguments)}: allow?")
            self._record(result, "confirmation", {"tool": tool.name, "arguments": arguments, "answer": answer})
            if answer != "yes":
                decision = Decision(False, f"confirmation for {tool.actuator} was not given ({answer})")
        if not decision.allowed:
            self._record(result, "refusal", {"tool": tool.name, "arguments": arguments, "reason": decision.reason})
            return "refused", {"refused": decision.reason}
        if self.policy.dry_run:
            self._record(result, "dry_run", {"tool": tool.name, "arguments": arguments})
            return "dry_run", {"dry_run": True, "would_call": tool.name, "arguments": arguments,
                               **({"actuator": tool.actuator} if tool.actuator else {})}
        if tool.actuator is None:
            return self._call(result, tool, arguments, "actuation")
        return self._actuate(result, tool, value)

    @staticmethod
    def _set_in_run(result: AgentResult, actuator: str) -> int | None:
        """The value this run last had acknowledged for ``actuator`` (None: none, or unknown since)."""
        for step in reversed(result.steps):
            if isinstance(step.result, dict) and step.result.get("actuator") == actuator and step.status != "refused":
                return step.result["value"] if step.status == "ok" else None
        return None

    def _actuate(self, result: AgentResult, tool: AgentTool, value: int) -> tuple[str, Any]:
        from firmware_bridge import DeviceError, NotAnswering

        at = self.clock()
        try:
            tool.call({"value": value})
        except NotAnswering as exc:
            self.state.record(tool.actuator, value, at, acknowledged=False)
            outcome = {"actuator": tool.actuator, "value": value, "ok": False, "acknowledged": False,
                       "error": f"not acknowledged, so it may or may not have taken effect: {exc}"}
            self._record(result, "actuation", outcome)
            raise _DeviceLost(outcome["error"]) from None
        except DeviceError as exc:  # a NACK: the device refused, nothing changed
            self.state.count(tool.actuator, at)
            outcome = {"actuator": tool.actuator, "value": value, "ok": False, "acknowledged": False,
                       "error": str(exc)}
            self._record(result, "actuation", outcome)
            return "failed", outcome
        self.state.record(tool.actuator, value, at, acknowledged=True)
        outcome = {"actuator": tool.actuator, "value": value, "ok": True, "acknowledged": True}
        readback = self._readback(tool.actuator)
        if readback is not None:
            outcome["readback"] = readback
        self._record(result, "actuation", outcome)
        return "ok", outcome

    def _readback(self, actuator: str) -> dict | None:
        """The sensor the policy names for ``actuator``, read after the command (the bridge's
        protocol has no query for an actuator's own state: its ACK is the device's word)."""
        rule = self.policy.actuators.get(actuator)
        sensor = rule.readback if rule else None
        reader = next((t for t in self.tools.values() if sensor and t.sensor == sensor), None)
        if reader is None:
            return None
        try:
            return reader.call({})
        except Exception as exc:  # noqa: BLE001 - reported, never raised: the command itself succeeded
            return {"sensor": sensor, "error": str(exc)}

    def _call(self, result: AgentResult, tool: AgentTool, arguments: dict, kind: str) -> tuple[str, Any]:
        from firmware_bridge import NotAnswering

        try:
            outcome = tool.call(arguments)
            status = "ok"
        except NotAnswering as exc:
            self._record(result, kind, {"tool": tool.name, "arguments": arguments, "error": str(exc)})
            raise _DeviceLost(f"{tool.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a tool's error goes back to the model as its result
            outcome, status = {"error": f"{tool.name} failed: {exc}"}, "error"
        try:
            json.dumps(outcome)
        except (TypeError, ValueError):
            outcome = {"result": str(outcome)}
        self._record(result, kind, {"tool": tool.name, "arguments": arguments, "result": outcome})
        return status, outcome

    def _ask(self, question: str) -> str:
        """``yes``, ``no``, ``timeout`` or ``no one to ask``."""
        if self.confirm is None:
            return "no one to ask"
        timeout = self.policy.confirm_timeout_s
        if inspect.iscoroutinefunction(self.confirm):
            if self._loop is None:
                return "no one to ask"
            future = asyncio.run_coroutine_threadsafe(self.confirm(question, timeout), self._loop)
            try:
                return "yes" if future.result(timeout) is True else "no"
            except TimeoutError:
                future.cancel()
                return "timeout"
        box: dict[str, Any] = {}
        done = threading.Event()

        def ask() -> None:
            try:
                box["answer"] = self.confirm(question, timeout)
            except Exception as exc:  # noqa: BLE001 - a confirmation that fails is a no, said so
                box["error"] = f"the confirmation failed: {type(exc).__name__}: {exc}"
            finally:
                done.set()

        threading.Thread(target=ask, daemon=True, name="agent-confirm").start()
        if not done.wait(timeout):
            return "timeout"
        if "error" in box:
            return box["error"]
        answer = box.get("answer")
        return "yes" if answer is True else "timeout" if answer is None else "no"

    def _record(self, result: AgentResult, kind: str, data: dict) -> None:
        if self.audit is not None:
            self.audit.append(kind, data, result.run_id)


def _looping(steps: list[Step], repeats: int = 3) -> bool:
    """The same call with the same arguments ``repeats`` times in a row."""
    last = [s for s in steps if s.tool is not None][-repeats:]
    if len(last) < repeats:
        return False
    keys = {json.dumps([s.tool, s.arguments], sort_keys=True, default=str) for s in last}
    return len(keys) == 1


def state_from_audit(audit: AuditLog | None) -> PolicyState:
    """What earlier runs sent, as recorded in the audit log (rates and steps hold across runs)."""
    state = PolicyState()
    if audit is None:
        return state
    for entry in audit.entries():
        data = entry.get("data") or {}
        if entry.get("kind") == "actuation" and isinstance(data.get("actuator"), str) and "value" in data:
            if data.get("ok") or data.get("acknowledged") is False and "not acknowledged" in str(data.get("error")):
                state.record(data["actuator"], data["value"], entry.get("ts", 0.0), bool(data.get("ok")))
            else:
                state.count(data["actuator"], entry.get("ts", 0.0))
    return state
