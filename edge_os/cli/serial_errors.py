"""The serial bridge's errors as edge-os errors, for the commands that talk to devices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from edge_os.errors import DeviceError, EdgeOSError, InputError
from firmware_bridge.errors import BridgeError
from firmware_bridge.errors import InputError as BridgeInputError


@contextmanager
def device_errors() -> Iterator[None]:
    """Re-raise a ``firmware_bridge`` error as the edge-os error the CLI prints in one line."""
    try:
        yield
    except BridgeError as exc:
        error: EdgeOSError = InputError(str(exc)) if isinstance(exc, BridgeInputError) else DeviceError(str(exc))
        error.code = exc.code
        raise error from exc
