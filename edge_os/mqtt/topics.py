"""The MQTT topic tree of edge-os (documented in docs/mqtt.md).

```
edge-os/{device_id}/req        requests for one device           (device subscribes, QoS 1)
edge-os/all/req                requests for every device         (device subscribes, QoS 1)
edge-os/{device_id}/status     retained online/offline           (device publishes; last will)
edge-os/{device_id}/telemetry  periodic scheduler snapshot       (device publishes)
edge-os/{device_id}/events/{p} a pipeline's events               (device publishes; edge_os.pipelines)
edge-os/cloud/req              requests the device hands over    (cloud workers subscribe)
edge-os/{device_id}/cloud/res  cloud answers for that device     (device subscribes)
```

Answers to requests go to each request's own MQTT v5 response topic, not into this tree.
"""

from __future__ import annotations

from edge_os.errors import InputError, MqttError

ROOT = "edge-os"
BROADCAST = "all"
CLOUD = "cloud"
_RESERVED = {BROADCAST, CLOUD}
MAX_TOPIC_BYTES = 65535  # an MQTT string: two length bytes


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it can be one topic level and one directory name, else raise
    ``InputError``. It names the state directory too, so ``.``/``..`` and path separators are
    refused as well as the topic wildcards."""
    if (
        not device_id
        or len(device_id) > 128
        or not device_id.isprintable()
        or any(c in device_id for c in "/\\+#")
        or device_id.startswith("$")
        or device_id in (".", "..")
    ):
        raise InputError(
            f"device id {device_id!r} must be 1 to 128 printable characters without / \\ + # or a leading $,"
            " and not . or .."
        )
    if device_id in _RESERVED:
        raise InputError(f"device id {device_id!r} is reserved in the topic tree; pick another")
    return device_id


class InvalidTopic(MqttError):
    """A topic no broker lets a client publish to."""

    code = "invalid_topic"


def publish_topic_problem(topic: object) -> str | None:
    """Why ``topic`` cannot be published to (None when it can).

    MQTT forbids wildcards and NUL in a topic name, an empty name and one over 65535 UTF-8 bytes;
    topics starting with ``$`` are the broker's own (``$SYS``, ``$share``), never an answer's.
    """
    if not isinstance(topic, str) or not topic:
        return "the topic is empty"
    if "+" in topic or "#" in topic:
        return "the topic contains a wildcard (+ or #)"
    if "\0" in topic:
        return "the topic contains a NUL character"
    if topic.startswith("$"):
        return "topics starting with $ are reserved for the broker"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "the topic is not valid UTF-8"
    if size > MAX_TOPIC_BYTES:
        return f"the topic is {size} bytes of UTF-8; MQTT allows {MAX_TOPIC_BYTES}"
    return None


def request_topics(device_id: str) -> tuple[str, str]:
    """The topics a device takes requests from: its own and the broadcast one."""
    return f"{ROOT}/{device_id}/req", f"{ROOT}/{BROADCAST}/req"


def status_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/status"


def telemetry_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/telemetry"


def event_topic_root(device_id: str) -> str:
    return f"{ROOT}/{device_id}/events"


def cloud_request_topic() -> str:
    return f"{ROOT}/{CLOUD}/req"


def cloud_response_topic(device_id: str) -> str:
    return f"{ROOT}/{device_id}/{CLOUD}/res"
