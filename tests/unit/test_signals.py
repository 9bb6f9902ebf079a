"""wait_for_signal: returns on SIGTERM or SIGINT and leaves the handlers as it found them."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from edge_os.signals import wait_for_signal


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_returns_on_the_signal_and_restores_the_handlers(sig):
    def previous(*_):
        raise AssertionError("the handler from before must not see the signal wait_for_signal caught")

    before = {s: signal.signal(s, previous) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        def send_once_waiting() -> None:
            # Once wait_for_signal has put its handler in place (give up after 10 s: the handler
            # from before then fails the test); Python runs handlers on the main thread.
            deadline = time.monotonic() + 10
            while signal.getsignal(sig) is previous and time.monotonic() < deadline:
                time.sleep(0.001)
            os.kill(os.getpid(), sig)

        threading.Thread(target=send_once_waiting, daemon=True).start()
        wait_for_signal()
        assert signal.getsignal(signal.SIGTERM) is previous and signal.getsignal(signal.SIGINT) is previous
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
