"""A microcontroller's sensors and actuators as Home Assistant entities, driven from the bridge.

``serve --mqtt URL --homeassistant --agent-port DEV`` runs one ``McuDoor``: it publishes the retained
discovery configs of ``edge_os.mqtt.ha_entities``, streams every sensor from the device and publishes
a reading when it changes (and at least once a minute), and takes commands from the actuators'
command topics. A command goes through the agent's own ``ActuatorGate`` (policy, audit log, rate
state), on a worker thread, never on the network thread. A refused, malformed or failed command is
answered on ``edge-os/{device_id}/ha/mcu/error`` and actuates nothing; an actuator's state topic
carries the value the device acknowledged (from whoever sent it: Home Assistant or an agent run).
Configs this device left retained that match no sensor or actuator now are replaced by empty
retained payloads (Home Assistant removes those entities). A clean stop keeps every entity and marks
the link offline: Home Assistant shows them unavailable and keeps what the user gave them (names,
areas, history), as it does for any device that restarts.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from edge_os.mqtt.ha_entities import (
    UNKNOWN,
    McuEntities,
    actuator_state_topic,
    command_topic,
    error_topic,
    link_topic,
    mcu_root,
    sensor_state_topic,
)

log = logging.getLogger(__name__)

REFRESH_S = 60.0  # an unchanged reading is published again this often (it is retained anyway)
MAX_COMMAND_BYTES = 64
ORIGIN = "homeassistant"


class McuDoor:
    """Home Assistant's view of ``runs.device`` (``runs``: an ``edge_os.api.agent_runs.AgentRuns``).

    ``publish(topic, payload, retain)`` is the bridge's; it may raise ``NotConnected``. The bridge
    calls ``sync()`` from its housekeeping thread, ``received()`` for messages on ``subscriptions``,
    ``forget()`` after a reconnect, and ``stop()`` before it disconnects.
    """

    def __init__(self, device_id: str, prefix: str, runs, publish: Callable[[str, bytes, bool], object],
                 period_s: float) -> None:
        self.entities = McuEntities(device_id, prefix)
        self.device_id, self.prefix = device_id, prefix
        self._device, self._policy, self._gate = runs.device, runs.policy, runs.gate()
        self._publish = publish
        self._period_s = max(period_s, 0.05)
        self._lock = threading.Lock()
        self._published: dict[str, bytes] = {}  # retained topic -> payload published this connection
        self._stale: set[str] = set()
        self._caps = None
        self._configs: dict[str, bytes] = {}  # discovery config topic -> payload, for self._caps
        self._streams: dict[str, Any] = {}  # sensor name -> firmware_bridge.Subscription
        self._readings: dict[str, float] = {}  # sensor -> its latest value, not yet necessarily published
        self._sent_at: dict[str, float] = {}  # state topic -> when last published
        # actuator -> the values it may hold (one: the acknowledged state; none or several: unknown)
        self._states = {a: frozenset(v) for a, v in runs.state.possible.items()}
        self._policy_state = runs.state
        runs.state.watch(self._state_changed)
        self._commands: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="ha-mcu-commands", daemon=True)

    def start(self) -> None:
        """Start taking commands (they queue until then)."""
        self._worker.start()

    # -- wiring -------------------------------------------------------------------------------

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """This device's retained configs (to find stale ones) and the actuators' command topics."""
        return f"{self.prefix}/+/{self.entities.node}/+/config", f"{mcu_root(self.device_id)}/actuator/+/set"

    def handles(self, topic: str) -> bool:
        parts = topic.split("/")
        config = len(parts) == 5 and parts[0] == self.prefix and parts[2] == self.entities.node and parts[4] == "config"
        return config or (topic.startswith(f"{mcu_root(self.device_id)}/actuator/") and topic.endswith("/set"))

    def received(self, topic: str, payload: bytes, retained: bool) -> None:
        """A config retained at the broker, or a command (network thread: quick). A retained command
        is refused: the broker replays it at every connection, so it would actuate again after
        each restart or network loss."""
        if topic.endswith("/config"):
            with self._lock:
                if payload and topic not in self._published:
                    self._stale.add(topic)
            return
        actuator = next((a.name for a in self._caps_now().actuators if command_topic(self.device_id, a.name) == topic),
                        None)
        if actuator is None:
            self._error("unknown_actuator", f"{topic} is no actuator's command topic now; nothing was actuated",
                        payload=payload)
            return
        if retained:
            if payload:  # an empty one is what clears a retained command: nothing to say
                self._error("retained_command", f"{actuator}: a retained command replays at every connection; "
                            "publish commands with retain off (and clear this one with an empty retained payload); "
                            "nothing was actuated", actuator=actuator, payload=payload)
            return
        try:
            value = parse_command(payload)
        except ValueError as exc:
            self._error("invalid_command", f"{actuator}: {exc}; nothing was actuated", actuator=actuator,
                        payload=payload)
            return
        self._commands.put((actuator, value))

    def forget(self) -> None:
        """Publish everything again (after a reconnect, or Home Assistant's birth message)."""
        with self._lock:
            self._published.clear()
            self._sent_at.clear()

    # -- housekeeping -------------------------------------------------------------------------

    def sync(self) -> None:
        """Publish what changed: configs (and removals), link availability, readings, states."""
        caps = self._caps_now()
        if caps is not self._caps:  # configs follow the capabilities (the policy is fixed): built once per change
            self._caps = caps
            self._follow_sensors(caps)
            self._configs = {topic: json.dumps(config, sort_keys=True).encode()
                             for topic, config in self.entities.configs(caps, self._policy).items()}
        configs = self._configs
        with self._lock:
            gone = (set(self._published) | self._stale) - set(configs)
            gone = {t for t in gone if t.endswith("/config")}
            self._stale.clear()
        self._retain(link_topic(self.device_id), b"online" if self._device.link.connected else b"offline")
        for topic, payload in configs.items():
            self._retain(topic, payload)
        for topic in sorted(gone):
            self._publish(topic, b"", True)
            with self._lock:
                self._published.pop(topic, None)
            log.info("Home Assistant entity %s removed", topic)
        now = time.monotonic()
        with self._lock:
            readings = {s.name: self._readings[s.name] for s in caps.sensors if s.name in self._readings}
            states = {a.name: self._states.get(a.name, frozenset()) for a in caps.actuators}
        for sensor, value in readings.items():
            self._retain(sensor_state_topic(self.device_id, sensor), _number(value), refresh=now)
        for actuator, values in states.items():
            payload = str(next(iter(values))).encode() if len(values) == 1 else UNKNOWN.encode()
            self._retain(actuator_state_topic(self.device_id, actuator), payload)

    def stop(self) -> None:
        """Stop the streams and the command worker; the entities stay, unavailable (a clean stop)."""
        from firmware_bridge import BridgeError

        self._policy_state.unwatch(self._state_changed)
        self._commands.put(None)
        if self._worker.is_alive():
            self._worker.join(5)
        for stream in self._streams.values():
            try:
                stream.close()
            except BridgeError as exc:
                log.warning("could not stop a sensor stream: %s", exc)
        self._publish(link_topic(self.device_id), b"offline", True)

    # -- internals ----------------------------------------------------------------------------

    def _caps_now(self):
        return self._device.capabilities

    def _follow_sensors(self, caps) -> None:
        from firmware_bridge import BridgeError

        for info in caps.sensors:
            if info.name in self._streams:
                continue
            try:
                self._streams[info.name] = self._device.subscribe(info.name, self._period_s, self._on_reading)
            except BridgeError as exc:
                log.warning("cannot stream %s for Home Assistant: %s", info.name, exc)

    def _on_reading(self, reading) -> None:  # the device's reader thread: store, publish later
        with self._lock:
            self._readings[reading.sensor] = reading.value

    def _state_changed(self, actuator: str, values: frozenset[int]) -> None:
        with self._lock:
            self._states[actuator] = values
        # published on the next housekeeping tick; the command worker publishes at once (below)

    def _retain(self, topic: str, payload: bytes, refresh: float | None = None) -> None:
        with self._lock:
            same = self._published.get(topic) == payload
            fresh = refresh is None or refresh - self._sent_at.get(topic, float("-inf")) < REFRESH_S
        if same and fresh:
            return
        self._publish(topic, payload, True)
        with self._lock:
            self._published[topic] = payload
            self._sent_at[topic] = time.monotonic()

    def _work(self) -> None:
        from edge_os.mqtt.connection import NotConnected

        while (command := self._commands.get()) is not None:
            actuator, value = command
            try:
                outcome = self._gate.command(actuator, value, ORIGIN)
            except Exception as exc:  # noqa: BLE001 - the sender hears why; the door keeps serving
                log.exception("Home Assistant command %s=%s failed", actuator, value)
                self._error("internal", f"{actuator}={value}: {type(exc).__name__}: {exc}", actuator=actuator,
                            value=value)
                continue
            log.info("Home Assistant command %s=%s: %s %s", actuator, value, outcome.status, outcome.reason)
            if outcome.ok:
                try:
                    self._retain(actuator_state_topic(self.device_id, actuator), str(value).encode())
                except NotConnected:
                    pass  # the next sync after reconnecting publishes it
            else:  # refused, dry_run, failed (NACK), lost (no acknowledgement)
                self._error(outcome.status, outcome.reason, actuator=actuator, value=value)

    def _error(self, code: str, message: str, **fields: Any) -> None:
        if "payload" in fields:
            fields["payload"] = fields["payload"][:MAX_COMMAND_BYTES].decode("utf-8", errors="replace")
        body = {"type": "error", "code": code, "message": message, "origin": ORIGIN, **fields}
        log.warning("Home Assistant command refused: %s: %s", code, message)
        try:
            self._publish(error_topic(self.device_id), json.dumps(body, ensure_ascii=False).encode(), False)
        except Exception as exc:  # noqa: BLE001 - offline: the refusal is in the log (and the audit log)
            log.warning("could not publish the refusal: %s", exc)


def parse_command(payload: bytes) -> int:
    """The integer a command payload holds (``"80"``, ``"80.0"``, ``"1"``); ValueError says why not."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise ValueError(f"the payload has {len(payload)} bytes; a command is one integer")
    try:
        text = payload.decode("ascii").strip()
        number = float(text)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"the payload {payload[:32]!r} is not a number; send an integer such as 1 or 80") from None
    if not number.is_integer():
        raise ValueError(f"{text} is not an integer; actuators take integers")
    return int(number)


def _number(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else repr(value)).encode()
