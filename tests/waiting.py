"""Waiting in tests for an event, never for a fixed time: this machine is shared and slow at times."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float, what: str = "condition", interval: float = 0.02) -> Any:
    """Poll ``condition`` until it is truthy and return its value; ``AssertionError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_for_output(stream, needle: str, timeout: float = 60.0) -> None:
    """Read the unbuffered pipe ``stream`` until ``needle`` appears; ``AssertionError`` with what was
    read once ``timeout`` seconds have passed in all or the writer has closed it."""
    deadline = time.monotonic() + timeout
    seen = b""
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        ready = select.select([stream], [], [], left)[0] if left > 0 else []
        if not ready:
            raise AssertionError(f"no {needle!r} within {timeout} s; got: {seen.decode()}")
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"the writer closed before {needle!r}: {seen.decode()}")
        seen += chunk
