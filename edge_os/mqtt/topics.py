"""The MQTT topic tree of edge-os (documented in docs/mqtt.md).

```
edge-os/{device_id}/req        requests for one device           (device subscribes, QoS 1)
edge-os/all/req                requests for every device         (device subscribes, QoS 1)
edge-os/{device_id}/status     retained online/offline           (device publishes; last will)
edge-os/{device_id}/telemetry  periodic scheduler snapshot       (device publishes)
edge-os/cloud/req              requests the device hands over    (cloud workers subscribe)
edge-os/{device_id}/cloud/res  cloud answers for that device     (device subscribes)
```

Answers to requests go to each request's own MQTT v5 response topic, not into this tree.
"""

from __future__ import annotations

from edge_os.errors import InputError

ROOT = "edge-os"
BROADCAST = "all"
CLOUD = "cloud"
_RESERVED = {BROADCAST, CLOUD}


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it can be one topic level, else raise ``InputError``."""
    if not device_id or any(c in device_id for c in "/+#\0") or device_id.startswith("$"):
        raise InputError(f"device id {device_id!r} must be a non-empty topic level without / + # or a leading $")
    if device_id in _RESERVED:
        raise InputError(f"device id {device_id!r} is reserved in the topic tree; pick another")
    return device_id


def request_topics(device_id: str) -> tuple[str, str]:
    """The topics a device takes requests from: its own and the broadcast one."""
    return f"{ROOT}/{device_id}/req", f"{ROOT}/{BROADCAST}/req"


def status_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/status"


def telemetry_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/telemetry"


def cloud_request_topic() -> str:
    return f"{ROOT}/{CLOUD}/req"


def cloud_response_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/{CLOUD}/res"
