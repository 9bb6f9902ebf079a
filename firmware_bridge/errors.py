"""Errors of the serial bridge. All are edge-os errors, so the CLI prints one line for each."""

from __future__ import annotations

from edge_os.errors import DeviceError, InputError
from firmware_bridge.messages import ErrorCode

__all__ = ["DeviceError", "InputError", "NotAnswering", "PortError", "Refused"]


class PortError(DeviceError):
    """The serial port cannot be opened (missing, busy, bad URL) or went away."""

    code = "bad_port"


class NotAnswering(DeviceError):
    """No valid answer arrived after every retransmission."""

    code = "device_not_answering"


class Refused(DeviceError):
    """The device answered NACK."""

    code = "device_refused"

    def __init__(self, message: str, error: ErrorCode | int) -> None:
        super().__init__(message)
        self.error = error
