"""Home Assistant MQTT discovery (`edge-os serve --mqtt URL --homeassistant [PREFIX]`).

The bridge publishes, retained, one discovery config per entity to
``{prefix}/sensor/{node}/{object}/config`` and the values of all of them, retained, as one JSON
document on ``edge-os/{device_id}/ha/state`` (each entity picks its value with a template).
Availability is the bridge's retained status topic, whose last will says ``offline``. Each loaded
model has an entity of its own; when the model is unloaded its config is replaced by an empty
retained payload, which removes the entity from Home Assistant. See docs/homeassistant.md.
"""

from __future__ import annotations

import json
import logging
import platform
import re
from collections.abc import Callable
from typing import Any

from edge_os import __version__
from edge_os.mqtt.topics import ROOT, status_topic

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "homeassistant"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MIB = 1 << 20


def safe_id(text: str) -> str:
    """``text`` as a discovery topic level: only letters, digits, ``_`` and ``-``."""
    return _UNSAFE.sub("_", text)


def state_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/ha/state"


def state_document(status: dict) -> dict[str, Any]:
    """The values every entity reads, from the scheduler's ``status()``."""
    temps = [z["temp_c"] for z in status.get("thermal", {}).get("zones", []) if z.get("temp_c") is not None]
    loaded = [m for m in status.get("models", []) if m.get("loaded")]
    return {
        "temperature_c": round(max(temps), 1) if temps else None,
        "governor": status.get("governor", {}).get("level"),
        "memory_used_mib": round(status.get("memory", {}).get("accounted_bytes", 0) / MIB, 2),
        "memory_budget_mib": round(status.get("memory", {}).get("budget_bytes", 0) / MIB, 2),
        "tok_s": status.get("tok_s", 0.0),
        "loaded_count": len(loaded),
        "loaded_models": [m["name"] for m in loaded],
        "models": {safe_id(m["name"]): {"name": m["name"], "kind": m.get("kind", "llm"),
                                        "resident_mib": round(m.get("resident_bytes", 0) / MIB, 3)} for m in loaded},
    }


class Discovery:
    """Keeps Home Assistant's view of this device in step with the scheduler.

    ``publish(topic, payload, retain)`` is the bridge's (QoS 1); ``sync(status)`` publishes what
    changed: new or changed configs, empty payloads for entities that went away, and the state.
    """

    def __init__(self, device_id: str, prefix: str, publish: Callable[[str, bytes, bool], object]):
        self.device_id = device_id
        self.prefix = prefix
        self.node = safe_id(device_id)
        self._publish = publish
        self._published: dict[str, bytes] = {}  # config topic -> payload Home Assistant holds
        self._stale: set[str] = set()  # retained configs found at the broker that this run did not publish

    def device(self) -> dict[str, Any]:
        return {
            "identifiers": [f"edge-os_{self.node}"],
            "name": self.device_id,
            "manufacturer": "edge-os",
            "model": f"edge-os device ({platform.machine()})",
            "sw_version": __version__,
            "hw_version": platform.machine(),
        }

    def _sensor(self, object_id: str, name: str, value_template: str, **extra: Any) -> tuple[str, dict]:
        config = {
            "name": name,
            "unique_id": f"edge-os_{self.node}_{object_id}",
            "default_entity_id": f"sensor.edge_os_{self.node}_{object_id}".lower(),
            "state_topic": state_topic(self.device_id),
            "value_template": value_template,
            "availability": [{
                "topic": status_topic(self.device_id),
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }],
            "device": self.device(),
            "origin": {"name": "edge-os", "sw_version": __version__},
            **extra,
        }
        return f"{self.prefix}/sensor/{self.node}/{object_id}/config", config

    def configs(self, status: dict) -> dict[str, dict]:
        """Discovery config per topic for the device sensors and each loaded model."""
        measurement = {"state_class": "measurement"}
        entries = [
            self._sensor("temperature", "Temperature", "{{ value_json.temperature_c }}",
                         device_class="temperature", unit_of_measurement="°C", **measurement),
            self._sensor("governor", "Governor level", "{{ value_json.governor }}", icon="mdi:speedometer",
                         entity_category="diagnostic"),
            self._sensor("memory_used", "Memory used", "{{ value_json.memory_used_mib }}",
                         device_class="data_size", unit_of_measurement="MiB", **measurement),
            self._sensor("tok_s", "Tokens per second", "{{ value_json.tok_s }}", unit_of_measurement="tok/s",
                         icon="mdi:speedometer", **measurement),
            self._sensor("loaded_models", "Loaded models", "{{ value_json.loaded_count }}", icon="mdi:brain",
                         json_attributes_topic=state_topic(self.device_id),
                         json_attributes_template="{{ {'models': value_json.loaded_models} | tojson }}",
                         **measurement),
        ]
        for key, model in state_document(status)["models"].items():
            entries.append(self._sensor(
                f"model_{key}", f"Model {model['name']}", f"{{{{ value_json.models['{key}'].resident_mib }}}}",
                device_class="data_size", unit_of_measurement="MiB", icon="mdi:brain", **measurement))
        return dict(entries)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Home Assistant's birth message, and the configs retained for this device (a previous run
        may have left entities of models that are gone now: ``sync`` removes them)."""
        return f"{self.prefix}/status", f"{self.prefix}/sensor/{self.node}/+/config"

    def handles(self, topic: str) -> bool:
        return topic in self.subscriptions[:1] or (topic.startswith(f"{self.prefix}/sensor/{self.node}/")
                                                   and topic.endswith("/config"))

    def received(self, topic: str, payload: bytes) -> None:
        """A message on one of ``subscriptions``."""
        if topic == f"{self.prefix}/status":
            if payload.strip() == b"online":  # Home Assistant (re)started: it wants every config again
                self.forget()
        elif payload and topic not in self._published:
            self._stale.add(topic)

    def forget(self) -> None:
        """After a reconnect (or Home Assistant's birth message): publish every config again."""
        self._published.clear()

    def sync(self, status: dict) -> None:
        configs = {topic: json.dumps(c, sort_keys=True).encode() for topic, c in self.configs(status).items()}
        for topic, payload in configs.items():
            if self._published.get(topic) != payload:
                self._publish(topic, payload, True)
                self._published[topic] = payload
        gone = {t for t in self._published if t not in configs} | {t for t in self._stale if t not in configs}
        self._stale.clear()
        for topic in sorted(gone):
            self._publish(topic, b"", True)  # an empty retained config removes the entity
            self._published.pop(topic, None)
            log.info("Home Assistant entity %s removed", topic)
        self._publish(state_topic(self.device_id), json.dumps(state_document(status)).encode(), True)
