"""Give freed heap memory back to the operating system after the big one-off allocations of a load.

Parsing ``tokenizer.json`` (about 18 MiB of transient allocations for a 49k-token BPE vocabulary)
and reading small parameter arrays leave freed but still resident blocks in glibc's heap, which
count against the device's memory and show in the peak RSS. ``malloc_trim(0)`` returns them.
Other C libraries (musl, macOS) have no such call; there this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_heap() -> None:
    """Return freed heap pages to the OS (glibc only)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
