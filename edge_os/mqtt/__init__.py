"""MQTT v5 front door: request/response bridge, status, telemetry and cloud fallback.

See docs/mqtt.md for the topic tree, the payloads and the delivery guarantees.

The names below are imported on first use (PEP 562), so that a light submodule such as
``edge_os.mqtt.redact`` or ``edge_os.mqtt.config`` does not load paho-mqtt.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "Backoff": "config",
    "BridgeConfig": "config",
    "BrokerConfig": "config",
    "CloudWorker": "cloud_worker",
    "MqttBridge": "bridge",
    "MqttFrontDoor": "front_door",
    "RedactionConfig": "redact",
    "Redactor": "redact",
    "WorkerConfig": "config",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
