"""MQTT v5 front door: request/response bridge, status, telemetry and cloud fallback.

See docs/mqtt.md for the topic tree, the payloads and the delivery guarantees.
"""

from edge_os.mqtt.bridge import MqttBridge
from edge_os.mqtt.cloud_worker import CloudWorker
from edge_os.mqtt.config import Backoff, BridgeConfig, BrokerConfig, WorkerConfig
from edge_os.mqtt.front_door import MqttFrontDoor
from edge_os.mqtt.redact import RedactionConfig, Redactor

__all__ = [
    "Backoff",
    "BridgeConfig",
    "BrokerConfig",
    "CloudWorker",
    "MqttBridge",
    "MqttFrontDoor",
    "RedactionConfig",
    "Redactor",
    "WorkerConfig",
]
