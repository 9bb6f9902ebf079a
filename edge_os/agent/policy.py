"""What acting tools may do, read from a TOML file; deny by default.

    dry_run = false             # check everything, send nothing
    confirm_timeout_s = 30      # no answer in time means no

    [actuators.fan]             # an actuator not listed here is never set
    min = 0                     # the envelope, narrower than the device's own
    max = 180
    max_per_minute = 6          # commands sent in any 60 s
    max_step = 90               # largest change from the value it may have now
    initial = 0                 # the value it is assumed to hold before the first command
    confirm = false             # ask a person first
    readback = "temperature"    # a sensor read after each command and reported with it

    [tools]
    allow = ["water_plants"]    # acting Python tools that may run (all read-only tools may)

The policy is checked before anything goes on the wire; ``PolicyState`` remembers what was sent
(in one process, or rebuilt from the audit log) so rate and step limits hold across runs.
"""

from __future__ import annotations

import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_os.errors import InputError

WINDOW_S = 60.0


@dataclass(frozen=True)
class ActuatorRule:
    name: str
    min: int | None = None
    max: int | None = None
    max_per_minute: int | None = None
    max_step: int | None = None
    initial: int = 0
    confirm: bool = False
    readback: str | None = None


@dataclass(frozen=True)
class Policy:
    actuators: dict[str, ActuatorRule] = field(default_factory=dict)
    allowed_tools: frozenset[str] = frozenset()
    dry_run: bool = False
    confirm_timeout_s: float = 30.0
    audit_retention_days: float | None = None
    audit_max_entries: int | None = None

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"policy {path} is not valid TOML: {exc}; fix the file") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "policy") -> Policy:
        known = {"dry_run", "confirm_timeout_s", "actuators", "tools", "audit"}
        _no_unknown(data, known, where)
        actuators = {}
        for name, raw in (data.get("actuators") or {}).items():
            if not isinstance(raw, dict):
                raise InputError(f"{where}: [actuators.{name}] must be a table")
            _no_unknown(raw, set(ActuatorRule.__dataclass_fields__) - {"name"}, f"{where} [actuators.{name}]")
            for key in ("min", "max", "max_per_minute", "max_step", "initial"):
                if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int)):
                    raise InputError(f"{where}: actuators.{name}.{key} must be an integer")
            for key in ("max_per_minute", "max_step"):
                if raw.get(key, 0) < 0:
                    raise InputError(f"{where}: actuators.{name}.{key} must be >= 0")
            rule = ActuatorRule(name, **raw)
            if rule.min is not None and rule.max is not None and rule.min > rule.max:
                raise InputError(f"{where}: actuators.{name}: min {rule.min} is above max {rule.max}")
            actuators[name] = rule
        tools = data.get("tools") or {}
        _no_unknown(tools, {"allow"}, f"{where} [tools]")
        audit = data.get("audit") or {}
        _no_unknown(audit, {"retention_days", "max_entries"}, f"{where} [audit]")
        timeout = data.get("confirm_timeout_s", 30.0)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InputError(f"{where}: confirm_timeout_s must be a number of seconds > 0")
        return cls(actuators, frozenset(tools.get("allow", [])), bool(data.get("dry_run", False)), float(timeout),
                   audit.get("retention_days"), audit.get("max_entries"))


def _no_unknown(table: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    confirm: bool = False


class PolicyState:
    """What was sent to each actuator: the values it may hold now and when commands went out.

    A command that was not acknowledged may or may not have run, so afterwards the actuator may
    hold either value; the next step must be within ``max_step`` of both.
    """

    def __init__(self) -> None:
        self.possible: dict[str, set[int]] = {}
        self.sent: dict[str, deque[float]] = {}
        self._watchers: list[Callable[[str, frozenset[int]], None]] = []

    def watch(self, watcher: Callable[[str, frozenset[int]], None]) -> None:
        """Call ``watcher(actuator, values it may hold now)`` after every ``record`` (on the caller's
        thread, so it must be quick): Home Assistant shows an actuator's state from this."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: Callable[[str, frozenset[int]], None]) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def record(self, actuator: str, value: int, at: float, acknowledged: bool) -> None:
        values = self.possible.setdefault(actuator, set())
        if acknowledged:
            values.clear()
        values.add(value)
        self.count(actuator, at)
        for watcher in self._watchers:
            watcher(actuator, frozenset(values))

    def count(self, actuator: str, at: float) -> None:
        """A command went on the wire at ``at`` (whatever became of it)."""
        self.sent.setdefault(actuator, deque()).append(at)

    def recent(self, actuator: str, now: float) -> int:
        times = self.sent.get(actuator, deque())
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        return len(times)


def check(policy: Policy, state: PolicyState, actuator: str | None, tool_name: str, value: Any,
          now: float) -> Decision:
    """May this acting tool run now? For an actuator, ``value`` is the value to set."""
    if actuator is None:
        if tool_name in policy.allowed_tools:
            return Decision(True)
        return Decision(False, f"{tool_name} acts on the world and the policy does not allow it")
    rule = policy.actuators.get(actuator)
    if rule is None:
        return Decision(False, f"the policy does not allow setting {actuator}")
    if rule.min is not None and value < rule.min or rule.max is not None and value > rule.max:
        return Decision(False, f"{actuator}={value} is outside the policy's range {rule.min}..{rule.max}")
    if rule.max_per_minute is not None and state.recent(actuator, now) >= rule.max_per_minute:
        return Decision(False, f"{actuator} was already set {rule.max_per_minute} times in the last minute "
                               f"(the policy's limit)")
    if rule.max_step is not None:
        current = state.possible.get(actuator) or {rule.initial}
        far = max(abs(value - v) for v in current)
        if far > rule.max_step:
            return Decision(False, f"{actuator}={value} is a change of {far} from {sorted(current)}; the policy "
                                   f"allows at most {rule.max_step} per step")
    return Decision(True, confirm=rule.confirm)
