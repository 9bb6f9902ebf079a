"""Message types, error codes and payload codecs of the protocol (PROTOCOL.md, "Messages").

Every integer is little-endian; strings are a length byte and UTF-8; floats are IEEE-754 binary32.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum


class MsgType(IntEnum):
    HELLO = 0x01
    READ = 0x02
    READING = 0x03
    SUBSCRIBE = 0x04
    COMMAND = 0x05
    ACK = 0x06
    NACK = 0x07
    PING = 0x08
    PONG = 0x09
    LOG = 0x0A


class ErrorCode(IntEnum):
    """Why a device refused a request (the payload of NACK)."""

    UNSUPPORTED_VERSION = 1
    BAD_TYPE = 2
    BAD_PAYLOAD = 3
    UNKNOWN_SENSOR = 4
    UNKNOWN_ACTUATOR = 5
    VALUE_NOT_ALLOWED = 6
    BAD_PERIOD = 7
    HARDWARE = 8


class PayloadError(ValueError):
    """A payload does not have the layout its message type requires."""


ACT_RANGE, ACT_SET = 0, 1
READING = struct.Struct("<BfI")  # sensor id, value, device clock in ms
SUBSCRIBE = struct.Struct("<BI")  # sensor id, period in ms (0 stops the stream)
COMMAND = struct.Struct("<Bi")  # actuator id, value
MIN_PERIOD_MS = 10
HELLO_DIGEST = b"\x01"  # HELLO payload asking only for the CRC-32 of the capabilities
DIGEST = struct.Struct("<I")  # the answer to it; full capabilities are never this short


@dataclass(frozen=True)
class SensorInfo:
    id: int
    name: str
    unit: str
    min: float
    max: float


@dataclass(frozen=True)
class ActuatorInfo:
    """An actuator accepts either any integer in ``min..max`` or one of ``values``."""

    id: int
    name: str
    unit: str
    values: tuple[int, ...] | None = None
    min: int = 0
    max: int = 0

    def allows(self, value: int) -> bool:
        if self.values is not None:
            return value in self.values
        return self.min <= value <= self.max

    def describe_allowed(self) -> str:
        if self.values is not None:
            return "one of " + ", ".join(str(v) for v in self.values)
        return f"an integer from {self.min} to {self.max}"


@dataclass(frozen=True)
class Capabilities:
    """What a device announced in HELLO."""

    firmware: str
    version: str
    max_payload: int
    sensors: tuple[SensorInfo, ...]
    actuators: tuple[ActuatorInfo, ...]


@dataclass(frozen=True)
class Reading:
    sensor: str
    value: float
    unit: str
    device_ms: int  # the device's millisecond clock when it sampled


class _Cursor:
    """Reads fields off a payload, raising PayloadError instead of IndexError/struct.error."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise PayloadError(f"payload ends after {len(self.data)} bytes, expected more")
        fields = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return fields

    def text(self) -> str:
        (n,) = self.take("<B")
        (raw,) = self.take(f"<{n}s")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"text is not UTF-8: {raw!r}") from exc

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(f"{len(self.data) - self.pos} unexpected bytes at the end of the payload")


def _text(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > 255:
        raise PayloadError(f"text longer than 255 bytes: {s[:20]!r}...")
    return bytes([len(raw)]) + raw


def encode_hello(caps: Capabilities) -> bytes:
    """The payload a device sends in answer to HELLO (the simulator's C code writes the same)."""
    out = bytearray(_text(caps.firmware) + _text(caps.version))
    out += struct.pack("<HB", caps.max_payload, len(caps.sensors))
    for s in caps.sensors:
        out += bytes([s.id]) + _text(s.name) + _text(s.unit) + struct.pack("<ff", s.min, s.max)
    out.append(len(caps.actuators))
    for a in caps.actuators:
        out += bytes([a.id]) + _text(a.name) + _text(a.unit)
        if a.values is None:
            out += struct.pack("<Bii", ACT_RANGE, a.min, a.max)
        else:
            out += struct.pack(f"<BB{len(a.values)}i", ACT_SET, len(a.values), *a.values)
    return bytes(out)


def decode_hello(payload: bytes) -> Capabilities:
    c = _Cursor(payload)
    firmware, version = c.text(), c.text()
    max_payload, n_sensors = c.take("<HB")
    sensors = []
    for _ in range(n_sensors):
        (sid,) = c.take("<B")
        name, unit = c.text(), c.text()
        lo, hi = c.take("<ff")
        sensors.append(SensorInfo(sid, name, unit, lo, hi))
    actuators = []
    (n_actuators,) = c.take("<B")
    for _ in range(n_actuators):
        (aid,) = c.take("<B")
        name, unit = c.text(), c.text()
        (kind,) = c.take("<B")
        if kind == ACT_RANGE:
            lo, hi = c.take("<ii")
            actuators.append(ActuatorInfo(aid, name, unit, min=lo, max=hi))
        elif kind == ACT_SET:
            (n,) = c.take("<B")
            actuators.append(ActuatorInfo(aid, name, unit, values=c.take(f"<{n}i")))
        else:
            raise PayloadError(f"unknown actuator kind {kind} for {name!r}")
    c.end()
    return Capabilities(firmware, version, max_payload, tuple(sensors), tuple(actuators))


def decode_reading(payload: bytes) -> tuple[int, float, int]:
    """(sensor id, value, device ms) of a READING payload."""
    if len(payload) != READING.size:
        raise PayloadError(f"READING payload has {len(payload)} bytes, expected {READING.size}")
    return READING.unpack(payload)


def decode_nack(payload: bytes) -> ErrorCode | int:
    """The error code of a NACK (an int if this host does not know the code)."""
    if len(payload) < 1:
        raise PayloadError("NACK without an error code")
    try:
        return ErrorCode(payload[0])
    except ValueError:
        return payload[0]


def decode_log(payload: bytes) -> tuple[int, str]:
    """(level, text) of a LOG payload; undecodable bytes are replaced, a log must never fail."""
    if len(payload) < 1:
        raise PayloadError("LOG without a level")
    return payload[0], payload[1:].decode("utf-8", errors="replace")
