"""Errors of the serial bridge, under its own base so the package stands alone.

Each carries a one-line message that says what is wrong and how to fix it, and a stable
machine-readable ``code``. ``edge-os sensors`` and ``edge-os actuate`` turn them into edge-os
errors at their boundary, so the CLI prints one line for each.
"""

from __future__ import annotations

from firmware_bridge.messages import ErrorCode

__all__ = ["BridgeError", "DeviceError", "InputError", "NotAnswering", "PortError", "Refused"]


class BridgeError(Exception):
    """Base class: a problem with a device or a request to it that the user can fix."""

    code = "device_error"


class InputError(BridgeError):
    """A request to a device is invalid: an unknown sensor or actuator, a value it does not allow, ..."""

    code = "invalid_request"


class DeviceError(BridgeError):
    """A serial device cannot be opened, does not answer, or refuses a request."""

    code = "device_error"


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
