"""Find devices: every serial port the OS lists, each asked for HELLO."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from serial.tools import list_ports

from firmware_bridge.device import Device
from firmware_bridge.errors import DeviceError
from firmware_bridge.link import LinkConfig
from firmware_bridge.messages import Capabilities, Reading, SensorInfo

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


NOT_FINITE = "not_finite"  # the device sent NaN or an infinity
OUT_OF_RANGE = "out_of_range"  # outside the range the device itself declared for the sensor


def reading_flags(sensor: SensorInfo, value: float) -> list[str]:
    """What is wrong with ``value`` as a reading of ``sensor`` (empty when nothing is)."""
    if not math.isfinite(value):
        return [NOT_FINITE]
    declared = math.isfinite(sensor.min) and math.isfinite(sensor.max)
    if declared and not sensor.min <= value <= sensor.max:
        return [OUT_OF_RANGE]
    return []


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Survey:
    """A device's capabilities and one live reading of each sensor (or why it failed)."""

    url: str
    capabilities: Capabilities
    readings: dict[str, Reading | DeviceError]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: a non-finite number (a reading, a declared bound) becomes null, and each
        reading carries ``flags`` (``not_finite``, ``out_of_range``)."""
        caps = self.capabilities
        sensors = []
        for s in caps.sensors:
            reading = self.readings[s.name]
            if isinstance(reading, Reading):
                live = {"value": _finite(reading.value), "flags": reading_flags(s, reading.value)}
            else:
                live = {"error": str(reading)}
            sensors.append({"name": s.name, "unit": s.unit, "min": _finite(s.min), "max": _finite(s.max), **live})
        actuators = []
        for a in caps.actuators:
            allowed = {"values": list(a.values)} if a.values is not None else {"min": a.min, "max": a.max}
            actuators.append({"name": a.name, "unit": a.unit, **allowed})
        return {
            "port": self.url,
            "firmware": caps.firmware,
            "version": caps.version,
            "sensors": sensors,
            "actuators": actuators,
        }


def survey(device: Device) -> Survey:
    """Read every sensor of ``device`` once; a sensor that fails does not hide the others."""
    caps = device.capabilities
    assert caps is not None, "Device.open does the handshake"
    readings: dict[str, Reading | DeviceError] = {}
    for s in caps.sensors:
        try:
            readings[s.name] = device.read(s.name)
        except DeviceError as exc:
            readings[s.name] = exc
    return Survey(device.link.url, caps, readings)
