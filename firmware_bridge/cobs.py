"""Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so 0x00 can delimit frames.

Each block starts with a code byte ``n`` (1..255): ``n - 1`` data bytes follow, then an implied
zero unless ``n`` is 255 or the block ends the frame. Overhead: one byte per 254 bytes.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding (a zero byte, or a block past the end)."""


def encode(data: bytes) -> bytes:
    """Encode ``data``; the result contains no 0x00 and no delimiter."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
            continue
        block.append(byte)
        if len(block) == 254:  # a full block carries no implied zero
            out.append(255)
            out += block
            block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def decode(data: bytes) -> bytes:
    """Decode one frame (without its delimiter); raises CobsError if it is malformed."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            raise CobsError("zero byte inside a COBS frame")
        block = data[i + 1 : i + code]
        if len(block) != code - 1:
            raise CobsError("COBS block runs past the end of the frame")
        if 0 in block:
            raise CobsError("zero byte inside a COBS frame")
        out += block
        i += code
        if code != 255 and i < len(data):
            out.append(0)
    return bytes(out)
