"""Actuator commands from outside an agent run (Home Assistant), under the agent's own policy.

    gate = ActuatorGate(device, policy, audit, state, lock)
    outcome = gate.command("fan", 80, origin="homeassistant")   # ok, refused, dry_run, failed, lost

The same checks as an agent's acting call, in the same order: the policy (envelope, rate, step,
``confirm``: nobody can confirm a command that arrives as a message, so it is refused), then the
device's own allowed values, then the wire. Every command is one audit entry (``refusal``,
``dry_run`` or ``actuation``) whose data carries ``origin``; an ``actuation`` entry has the shape
the agent writes, so rate and step limits count commands from both. Sharing ``state`` and ``lock``
with ``edge_os.api.agent_runs.AgentRuns`` makes check-then-send one step across both.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from edge_os.agent.audit import AuditLog
from edge_os.agent.policy import Policy, PolicyState, check


@dataclass(frozen=True)
class Outcome:
    """What became of one command. ``status``: ``ok`` (acknowledged), ``refused`` (the policy or the
    device's allowed values said no: nothing was sent), ``dry_run`` (allowed, not sent), ``failed``
    (the device answered NACK: nothing changed) or ``lost`` (no acknowledgement: it may have run)."""

    actuator: str
    value: int
    status: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ActuatorGate:
    """Sends commands to a ``firmware_bridge.Device``'s actuators only when ``policy`` allows them."""

    def __init__(self, device, policy: Policy, audit: AuditLog, state: PolicyState, lock: threading.Lock, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.device, self.policy, self.audit, self.state, self.lock = device, policy, audit, state, lock
        self.clock = clock

    def command(self, actuator: str, value: int, origin: str) -> Outcome:
        """Check, send and record one command; never raises for a refusal or a device error."""
        from firmware_bridge import DeviceError, NotAnswering
        from firmware_bridge import InputError as BridgeInputError

        run = f"{origin}-{uuid.uuid4().hex[:8]}"
        with self.lock:
            at = self.clock()
            decision = check(self.policy, self.state, actuator, f"set_{actuator}", value, at)
            reason = decision.reason
            if decision.allowed and decision.confirm:
                reason = (f"the policy asks a person to confirm each {actuator} command, and a command from "
                          f"{origin} cannot be confirmed; use an agent run (docs/agent.md)")
            elif decision.allowed:
                info = self.device.actuator(actuator)
                if not info.allows(value):
                    reason = f"{value} is not allowed for {actuator}: the device takes {info.describe_allowed()}"
            if reason:
                return self._refuse(actuator, value, origin, run, reason)
            base = {"actuator": actuator, "value": value, "origin": origin}
            if self.policy.dry_run:
                self.audit.append("dry_run", base, run)
                return Outcome(actuator, value, "dry_run", "the policy is a dry run: checked, not sent")
            try:
                self.device.command(actuator, value)
            except BridgeInputError as exc:  # checked before anything went on the wire
                return self._refuse(actuator, value, origin, run, str(exc))
            except NotAnswering as exc:
                self.state.record(actuator, value, at, acknowledged=False)
                error = f"not acknowledged, so it may or may not have taken effect: {exc}"
                self.audit.append("actuation", {**base, "ok": False, "acknowledged": False, "error": error}, run)
                return Outcome(actuator, value, "lost", error)
            except DeviceError as exc:  # a NACK: the device refused, nothing changed
                self.state.count(actuator, at)
                self.audit.append("actuation", {**base, "ok": False, "acknowledged": False, "error": str(exc)}, run)
                return Outcome(actuator, value, "failed", str(exc))
            self.state.record(actuator, value, at, acknowledged=True)
            self.audit.append("actuation", {**base, "ok": True, "acknowledged": True}, run)
            return Outcome(actuator, value, "ok")

    def _refuse(self, actuator: str, value: int, origin: str, run: str, reason: str) -> Outcome:
        self.audit.append("refusal", {"actuator": actuator, "value": value, "origin": origin, "reason": reason}, run)
        return Outcome(actuator, value, "refused", reason)
