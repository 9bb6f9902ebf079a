"""Blocking until the process is asked to stop: how every long-running command ends cleanly."""

from __future__ import annotations

import signal
import threading


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM arrives, then restore the handlers there were before.

    Call it from the main thread (only it may set signal handlers); the caller stops its
    services when it returns.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
