"""Home Assistant discovery configs for a microcontroller's sensors and actuators (pure functions).

From the capabilities a ``firmware_bridge.Device`` announced in HELLO and the agent's policy:

* each sensor is a ``sensor`` with its unit (and a device class where the unit says what it measures);
* an actuator that takes exactly ``0`` and ``1`` is a ``switch``; one that takes a range of integers
  a ``number`` (a slider over the device's range narrowed to the policy's envelope); one with a single
  value a ``button`` that sends it; any other set of values a ``select`` of them.

Topics (``edge-os/{device_id}/ha/mcu/...``): ``sensor/{name}/state``, ``actuator/{name}/state`` (the
value the device acknowledged; ``None`` while unknown), ``actuator/{name}/set`` (commands), ``error``
(refused or malformed commands) and ``availability`` (the serial link). The entities form their own
Home Assistant device (the firmware's name and version), connected via the edge-os device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_os import __version__
from edge_os.mqtt.homeassistant import safe_id
from edge_os.mqtt.topics import ROOT, status_topic

# firmware unit -> (Home Assistant device class, the unit Home Assistant expects for it)
_UNITS = {
    "°C": ("temperature", "°C"), "°F": ("temperature", "°F"), "K": ("temperature", "K"),
    "%RH": ("humidity", "%"), "lx": ("illuminance", "lx"), "hPa": ("pressure", "hPa"), "Pa": ("pressure", "Pa"),
    "V": ("voltage", "V"), "mV": ("voltage", "mV"), "A": ("current", "A"), "mA": ("current", "mA"),
    "W": ("power", "W"), "ppm": ("carbon_dioxide", "ppm"), "dB": ("sound_pressure", "dB"),
}  # fmt: skip
UNKNOWN = "None"  # the state payload Home Assistant reads as "unknown"


def mcu_root(device_id: str) -> str:
    return f"{ROOT}/{device_id}/ha/mcu"


def sensor_state_topic(device_id: str, sensor: str) -> str:
    return f"{mcu_root(device_id)}/sensor/{safe_id(sensor)}/state"


def actuator_state_topic(device_id: str, actuator: str) -> str:
    return f"{mcu_root(device_id)}/actuator/{safe_id(actuator)}/state"


def command_topic(device_id: str, actuator: str) -> str:
    return f"{mcu_root(device_id)}/actuator/{safe_id(actuator)}/set"


def error_topic(device_id: str) -> str:
    return f"{mcu_root(device_id)}/error"


def link_topic(device_id: str) -> str:
    return f"{mcu_root(device_id)}/availability"


def platform_of(actuator) -> str:
    """``switch``, ``number``, ``button`` or ``select`` for a ``firmware_bridge.ActuatorInfo``."""
    if actuator.values is None:
        return "number"
    if sorted(actuator.values) == [0, 1]:
        return "switch"
    return "button" if len(actuator.values) == 1 else "select"


@dataclass(frozen=True)
class McuEntities:
    """The configs of one microcontroller's entities; ``node`` is the discovery node id."""

    device_id: str
    prefix: str

    @property
    def node(self) -> str:
        return f"{safe_id(self.device_id)}_mcu"

    def device_block(self, caps) -> dict[str, Any]:
        return {
            "identifiers": [f"edge-os_{self.node}"],
            "name": f"{self.device_id} microcontroller",
            "manufacturer": "edge-os firmware bridge",
            "model": caps.firmware,
            "sw_version": caps.version,
            "via_device": f"edge-os_{safe_id(self.device_id)}",
        }

    def _common(self, platform: str, key: str, name: str, caps) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"edge-os_{self.node}_{key}",
            "default_entity_id": f"{platform}.edge_os_{self.node}_{key}".lower(),
            "availability": [
                {"topic": status_topic(self.device_id), "value_template": "{{ value_json.state }}",
                 "payload_available": "online", "payload_not_available": "offline"},
                {"topic": link_topic(self.device_id), "payload_available": "online",
                 "payload_not_available": "offline"},
            ],
            "availability_mode": "all",  # the bridge is up and the serial link answers
            "device": self.device_block(caps),
            "origin": {"name": "edge-os", "sw_version": __version__},
        }

    def sensor(self, info, caps) -> tuple[str, dict[str, Any]]:
        key = f"sensor_{safe_id(info.name)}"
        config = {**self._common("sensor", key, info.name.replace("_", " ").capitalize(), caps),
                  "state_topic": sensor_state_topic(self.device_id, info.name), "state_class": "measurement"}
        device_class, unit = _UNITS.get(info.unit, (None, info.unit))
        if device_class is not None:
            config["device_class"] = device_class
        if unit:
            config["unit_of_measurement"] = unit
        return f"{self.prefix}/sensor/{self.node}/{safe_id(info.name)}/config", config

    def actuator(self, info, caps, rule=None) -> tuple[str, dict[str, Any]]:
        """``rule``: the policy's ``ActuatorRule`` for it (None: the policy never allows it)."""
        platform = platform_of(info)
        key = f"actuator_{safe_id(info.name)}"
        config = {**self._common(platform, key, info.name.replace("_", " ").capitalize(), caps),
                  "command_topic": command_topic(self.device_id, info.name), "qos": 1, "retain": False}
        state = actuator_state_topic(self.device_id, info.name)
        if platform == "switch":
            config.update(state_topic=state, payload_on="1", payload_off="0", state_on="1", state_off="0")
        elif platform == "number":
            low = info.min if rule is None or rule.min is None else max(info.min, rule.min)
            high = info.max if rule is None or rule.max is None else min(info.max, rule.max)
            config.update(state_topic=state, min=low, max=max(low, high), step=1, mode="slider")
            if info.unit:
                config["unit_of_measurement"] = info.unit
        elif platform == "button":
            config["payload_press"] = str(info.values[0])
        else:
            config.update(state_topic=state, options=[str(v) for v in info.values])
        return f"{self.prefix}/{platform}/{self.node}/{safe_id(info.name)}/config", config

    def configs(self, caps, policy) -> dict[str, dict[str, Any]]:
        """Every entity's discovery config by topic."""
        entries = [self.sensor(s, caps) for s in caps.sensors]
        entries += [self.actuator(a, caps, policy.actuators.get(a.name)) for a in caps.actuators]
        return dict(entries)
