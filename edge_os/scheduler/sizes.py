"""Byte sizes as people write them: ``2G``, ``512M``, ``1.5GiB``, ``1048576``."""

from __future__ import annotations

import re

from edge_os.errors import InputError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """Bytes in ``text``; units are powers of 1024 (``2G`` is 2 GiB). Raises ``InputError``."""
    match = _SIZE.match(text)
    if not match:
        raise InputError(f"{what} {text!r} is not a size; write e.g. 2G, 512M or 1048576 (bytes)")
    number, unit = match.groups()
    size = int(float(number) * _UNITS[unit.upper()])
    if size <= 0:
        raise InputError(f"{what} {text!r} must be more than 0 bytes")
    return size


def format_size(n: int) -> str:
    """Short human form: ``1.5G``, ``512M``, ``900K``, ``12B``."""
    for unit in ("T", "G", "M", "K"):
        if abs(n) >= _UNITS[unit]:
            value = n / _UNITS[unit]
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{n}B"
