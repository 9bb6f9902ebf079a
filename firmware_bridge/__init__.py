"""A verified serial link to sensors and actuators on a microcontroller.

Layers, one module each: :mod:`~firmware_bridge.cobs` and :mod:`~firmware_bridge.framing`
(bytes <-> checked frames), :mod:`~firmware_bridge.messages` (payload codecs),
:mod:`~firmware_bridge.link` (reader thread, retransmission, reconnection),
:mod:`~firmware_bridge.device` (sensors and actuators by name), :mod:`~firmware_bridge.aio`
(asyncio), :mod:`~firmware_bridge.discovery` and :mod:`~firmware_bridge.tools` (agent tools).
The wire format is specified in PROTOCOL.md; the reference firmware is in firmware/.
"""

from firmware_bridge.aio import AsyncDevice
from firmware_bridge.device import Device, ReadingStream, Subscription
from firmware_bridge.discovery import discover, serial_ports
from firmware_bridge.errors import BridgeError, DeviceError, InputError, NotAnswering, PortError, Refused
from firmware_bridge.link import Link, LinkConfig, LinkStats
from firmware_bridge.messages import ActuatorInfo, Capabilities, ErrorCode, Reading, SensorInfo
from firmware_bridge.tools import Tool, device_tools

__all__ = [
    "ActuatorInfo",
    "AsyncDevice",
    "BridgeError",
    "Capabilities",
    "Device",
    "DeviceError",
    "ErrorCode",
    "InputError",
    "Link",
    "LinkConfig",
    "LinkStats",
    "NotAnswering",
    "PortError",
    "Reading",
    "ReadingStream",
    "Refused",
    "SensorInfo",
    "Subscription",
    "Tool",
    "device_tools",
    "discover",
    "serial_ports",
]
