"""The capability cache behind the compact HELLO, and retransmission backoff."""

import zlib

from firmware_bridge.capability_cache import CapabilityCache
from firmware_bridge.link import LinkConfig
from firmware_bridge.messages import (
    ActuatorInfo,
    Capabilities,
    SensorInfo,
    encode_hello,
)

CAPS = Capabilities(
    "fw", "1.0", 240, (SensorInfo(0, "t", "C", -40.0, 125.0),), (ActuatorInfo(0, "fan", "", min=0, max=9),)
)


def test_a_stored_payload_is_found_by_its_crc(tmp_path):
    cache = CapabilityCache(tmp_path / "caps")
    payload = encode_hello(CAPS)
    assert cache.get(zlib.crc32(payload)) is None
    cache.put(payload)
    assert cache.get(zlib.crc32(payload)) == CAPS


def test_a_damaged_file_is_a_miss(tmp_path):
    cache = CapabilityCache(tmp_path)
    payload = encode_hello(CAPS)
    cache.put(payload)
    [path] = tmp_path.glob("*.hello")
    path.write_bytes(payload[:-1] + b"\xff")
    assert cache.get(zlib.crc32(payload)) is None


def test_an_unwritable_cache_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    CapabilityCache(blocker / "caps").put(encode_hello(CAPS))  # logs, does not raise


def test_retransmission_waits_grow_to_their_cap():
    config = LinkConfig(timeout=0.1, backoff=2.0, max_timeout=0.5)
    assert [round(config.wait_s(a), 3) for a in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert LinkConfig().wait_s(10) == LinkConfig().timeout  # no backoff by default
