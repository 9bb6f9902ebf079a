"""Capabilities remembered from earlier HELLOs, keyed by their CRC-32.

A fresh connection asks the device for the CRC-32 of its capabilities only (a 4-byte answer,
PROTOCOL.md "Compact HELLO") and looks them up here; only a device never seen before (or with new
firmware) sends the full ~180-byte description, which a noisy line corrupts far more often.
A hit is the exact bytes the device announced: the file's CRC-32 is checked against the key.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zlib
from pathlib import Path

from firmware_bridge.messages import Capabilities, PayloadError, decode_hello

log = logging.getLogger(__name__)


class CapabilityCache:
    """A directory of ``{crc32:08x}.hello`` files, each one HELLO payload."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def get(self, digest: int) -> Capabilities | None:
        """The capabilities whose payload has CRC-32 ``digest``, or None if not held (or damaged)."""
        path = self._path(digest)
        try:
            payload = path.read_bytes()
        except OSError:
            return None
        if zlib.crc32(payload) != digest:
            log.warning("ignoring damaged capability cache file %s", path)
            return None
        try:
            return decode_hello(payload)
        except PayloadError:
            return None

    def put(self, payload: bytes) -> None:
        """Remember a HELLO payload; a cache that cannot be written is only logged."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, self._path(zlib.crc32(payload)))
        except OSError as exc:
            log.warning("cannot write the capability cache in %s: %s", self.directory, exc)

    def _path(self, digest: int) -> Path:
        return self.directory / f"{digest:08x}.hello"
