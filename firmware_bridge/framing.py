"""Frames on the wire: ``COBS(header | payload | CRC-32) 0x00`` (PROTOCOL.md, "Framing").

:func:`encode_frame` builds one; :class:`FrameDecoder` turns a byte stream into messages, drops
whatever fails a check, and resynchronises at the next 0x00.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import Enum

from firmware_bridge import cobs

VERSION = 1
HEADER = struct.Struct("<BBBHH")  # version, type, flags, seq, payload length
CRC_LEN = 4
MAX_PAYLOAD = 240
MAX_RAW = HEADER.size + MAX_PAYLOAD + CRC_LEN
MAX_ENCODED = MAX_RAW + MAX_RAW // 254 + 1
FLAG_RESPONSE = 0x01


@dataclass(frozen=True)
class Frame:
    """One message as it travels: header fields and raw payload."""

    type: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    version: int = VERSION

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)


def encode_frame(frame: Frame) -> bytes:
    """The bytes to write for ``frame``, delimiter included."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    body = HEADER.pack(frame.version, frame.type, frame.flags, frame.seq & 0xFFFF, len(frame.payload))
    body += frame.payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


class Reject(Enum):
    """Why the decoder dropped the bytes between two delimiters."""

    BAD_COBS = "bad_cobs"
    TOO_SHORT = "too_short"
    BAD_CRC = "bad_crc"
    BAD_LENGTH = "bad_length"
    BAD_VERSION = "bad_version"
    OVERFLOW = "overflow"


def decode_frame(encoded: bytes) -> Frame | Reject:
    """Check and decode the bytes of one frame (no delimiter)."""
    try:
        raw = cobs.decode(encoded)
    except cobs.CobsError:
        return Reject.BAD_COBS
    if len(raw) < HEADER.size + CRC_LEN:
        return Reject.TOO_SHORT
    body, (crc,) = raw[:-CRC_LEN], struct.unpack("<I", raw[-CRC_LEN:])
    if zlib.crc32(body) != crc:
        return Reject.BAD_CRC
    version, type_, flags, seq, length = HEADER.unpack_from(body)
    if length != len(body) - HEADER.size:
        return Reject.BAD_LENGTH
    if version != VERSION:
        return Reject.BAD_VERSION
    return Frame(type=type_, seq=seq, payload=bytes(body[HEADER.size :]), flags=flags, version=version)


@dataclass
class FrameDecoder:
    """Splits a byte stream at 0x00 and decodes each piece.

    ``feed`` returns the frames that passed every check; ``rejects`` counts the others by reason.
    A frame longer than any valid one is dropped without buffering it, so garbage cannot make
    the host use unbounded memory.
    """

    rejects: dict[Reject, int] = field(default_factory=lambda: {r: 0 for r in Reject})
    _buf: bytearray = field(default_factory=bytearray)
    _overflow: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(0, start)
            chunk = data[start:] if end < 0 else data[start:end]
            if not self._overflow:
                self._buf += chunk
                self._overflow = len(self._buf) > MAX_ENCODED
            if end < 0:
                if self._overflow:
                    self._buf.clear()
                return frames
            result = Reject.OVERFLOW if self._overflow else (decode_frame(bytes(self._buf)) if self._buf else None)
            self._buf.clear()
            self._overflow = False
            if isinstance(result, Frame):
                frames.append(result)
            elif result is not None:
                self.rejects[result] += 1
            start = end + 1
