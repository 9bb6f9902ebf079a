"""Sensors and actuators as agent tools, generated from a device's HELLO capabilities.

Each tool has a name, a description and a JSON schema of its arguments, as LLM tool-calling
formats expect; ``call`` checks the arguments against that schema's rules before anything goes
on the wire, and returns a JSON-ready dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.device import Device
from firmware_bridge.errors import InputError
from firmware_bridge.messages import ActuatorInfo, SensorInfo


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    call: Callable[[dict[str, Any]], dict[str, Any]]


def _ident(text: str) -> str:
    """Tool names allow [A-Za-z0-9_-] only; firmware names may hold anything."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _no_arguments(name: str, arguments: dict[str, Any]) -> None:
    if arguments:
        raise InputError(f"{name} takes no arguments, got {sorted(arguments)}")


def _sensor_tool(device: Device, sensor: SensorInfo, prefix: str) -> Tool:
    name = f"{prefix}read_{_ident(sensor.name)}"
    unit = f" in {sensor.unit}" if sensor.unit else ""

    def call(arguments: dict[str, Any]) -> dict[str, Any]:
        _no_arguments(name, arguments)
        reading = device.read(sensor.name)
        return {"sensor": reading.sensor, "value": reading.value, "unit": reading.unit}

    return Tool(
        name=name,
        description=f"Read the {sensor.name} sensor now{unit} (range {sensor.min:g} to {sensor.max:g}).",
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
        call=call,
    )


def _value_schema(actuator: ActuatorInfo) -> dict[str, Any]:
    if actuator.values is not None:
        return {"type": "integer", "enum": list(actuator.values)}
    return {"type": "integer", "minimum": actuator.min, "maximum": actuator.max}


def _actuator_tool(device: Device, actuator: ActuatorInfo, prefix: str) -> Tool:
    name = f"{prefix}set_{_ident(actuator.name)}"
    unit = f" ({actuator.unit})" if actuator.unit else ""

    def call(arguments: dict[str, Any]) -> dict[str, Any]:
        if set(arguments) != {"value"}:
            raise InputError(f"{name} takes exactly one argument, value; got {sorted(arguments)}")
        value = arguments["value"]
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type; 1.0 is a fine integer
        device.command(actuator.name, value)  # checks type and allowed values before sending
        return {"actuator": actuator.name, "value": value, "ok": True}

    return Tool(
        name=name,
        description=f"Set the {actuator.name} actuator{unit} to {actuator.describe_allowed()}.",
        parameters={
            "type": "object",
            "properties": {"value": _value_schema(actuator)},
            "required": ["value"],
            "additionalProperties": False,
        },
        call=call,
    )


def device_tools(device: Device, prefix: str = "") -> list[Tool]:
    """One read tool per sensor and one set tool per actuator of ``device``.

    ``prefix`` keeps names unique when an agent talks to several devices.
    """
    caps = device.capabilities
    if caps is None:
        raise InputError("the device has not answered HELLO yet")
    return [_sensor_tool(device, s, prefix) for s in caps.sensors] + [
        _actuator_tool(device, a, prefix) for a in caps.actuators
    ]
