"""Find devices: every serial port the OS lists, each asked for HELLO."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from serial.tools import list_ports

from firmware_bridge.device import Device
from firmware_bridge.errors import DeviceError
from firmware_bridge.link import LinkConfig

log = logging.getLogger(__name__)

# Short: a port with something else on it should not hold discovery up for long.
PROBE = LinkConfig(timeout=0.3, retries=1)


def serial_ports() -> list[str]:
    """Device names of the serial ports the OS knows (USB adapters, on-board UARTs)."""
    return sorted(port.device for port in list_ports.comports())


def discover(ports: Iterable[str] | None = None, config: LinkConfig = PROBE) -> list[Device]:
    """Open each port (all of :func:`serial_ports` by default) and keep those that answer HELLO.

    The caller owns the returned devices and closes them. Ports that cannot be opened or do not
    answer are skipped (logged at debug level): a busy modem is not an error.
    """
    found = []
    for url in serial_ports() if ports is None else ports:
        try:
            found.append(Device.open(url, config))
        except DeviceError as exc:
            log.debug("no device on %s: %s", url, exc)
    return found
