"""The agent's tools: from a device's sensors and actuators, or from Python functions.

A tool is *read-only* (a sensor, a lookup) or *acting* (it changes the world). Acting tools are
denied unless the policy allows them; those made from an actuator carry its name, so the policy
can bound its values and rate.

    @tool
    def outside_temperature(city: str) -> dict:
        '''The temperature outside in a city, in degrees Celsius.'''
        ...
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from edge_os.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class AgentTool:
    """One tool: what the model sees (name, description, parameters) and what runs (``call``).

    ``acting`` marks a tool that changes the world; ``actuator`` names the device actuator a set
    tool drives (its argument is ``value``); ``sensor`` names the sensor a read tool reads.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    call: Callable[[dict[str, Any]], Any]
    acting: bool = False
    actuator: str | None = None
    sensor: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InputError(f"tool name {self.name!r} must be 1 to 64 letters, digits, _ or -")


def from_device(device, prefix: str = "") -> list[AgentTool]:
    """A read-only tool per sensor and an acting tool per actuator of a ``firmware_bridge.Device``."""
    from firmware_bridge import device_tools

    caps = device.capabilities
    sensors = {f"{prefix}read_{_ident(s.name)}": s.name for s in caps.sensors}
    actuators = {f"{prefix}set_{_ident(a.name)}": a.name for a in caps.actuators}
    return [AgentTool(t.name, t.description, t.parameters, t.call, acting=t.name in actuators,
                      actuator=actuators.get(t.name), sensor=sensors.get(t.name))
            for t in device_tools(device, prefix)]


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)  # as firmware_bridge.tools names them


def tool(fn: Callable | None = None, *, acting: bool = False, name: str | None = None):
    """Make a Python function a tool: its parameters' type hints become the JSON schema, the first
    paragraph of its docstring the description. ``acting=True`` for functions that change the world.
    Use as ``@tool`` or ``@tool(acting=True)``."""

    def wrap(f: Callable) -> AgentTool:
        hints = typing.get_type_hints(f)
        properties, required = {}, []
        for param in inspect.signature(f).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InputError(f"tool {f.__name__}: *args and **kwargs cannot be described to a model")
            properties[param.name] = _schema_of(hints.get(param.name, str), f.__name__, param.name)
            if param.default is inspect.Parameter.empty:
                required.append(param.name)
        schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
        doc = inspect.getdoc(f) or ""
        description = doc.split("\n\n")[0].replace("\n", " ").strip()

        def call(arguments: dict[str, Any]) -> Any:
            return f(**arguments)

        return AgentTool(name or f.__name__, description, schema, call, acting=acting)

    return wrap(fn) if fn is not None else wrap


def _schema_of(hint: Any, fname: str, pname: str) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        return _schema_of(next(a for a in args if a is not type(None)), fname, pname)  # optional: X | None
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is list and args and args[0] in _JSON_TYPES:
        return {"type": "array", "items": {"type": _JSON_TYPES[args[0]]}}
    raise InputError(f"tool {fname}: parameter {pname} has type {hint!r}; use str, int, float, bool, "
                     "a Literal or a list of those")


def check_arguments(schema: dict[str, Any], arguments: Any) -> str | None:
    """What is wrong with ``arguments`` under ``schema`` (the subset tools use), or None."""
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    properties = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in arguments]
    if missing:
        return f"missing argument(s) {missing}"
    extra = sorted(set(arguments) - set(properties))
    if extra and schema.get("additionalProperties", True) is False:
        return f"unknown argument(s) {extra}; the arguments are {sorted(properties)}"
    for key, rule in properties.items():
        if key in arguments:
            problem = _check_value(rule, arguments[key])
            if problem:
                return f"{key}: {problem}"
    return None


def _check_value(rule: dict[str, Any], value: Any) -> str | None:
    kind = rule.get("type")
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        if not (isinstance(value, float) and value.is_integer()):
            return f"must be an integer, not {value!r}"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"must be a number, not {value!r}"
    if kind == "string" and not isinstance(value, str):
        return f"must be a string, not {value!r}"
    if kind == "boolean" and not isinstance(value, bool):
        return f"must be true or false, not {value!r}"
    if kind == "array":
        if not isinstance(value, list):
            return f"must be a list, not {value!r}"
        return next((p for p in (_check_value(rule.get("items", {}), v) for v in value) if p), None)
    if "enum" in rule and value not in rule["enum"]:
        return f"must be one of {rule['enum']}, not {value!r}"
    if "minimum" in rule and value < rule["minimum"]:
        return f"must be at least {rule['minimum']}, not {value!r}"
    if "maximum" in rule and value > rule["maximum"]:
        return f"must be at most {rule['maximum']}, not {value!r}"
    return None


def relevant(tools: Iterable[AgentTool], goal: str, limit: int) -> list[AgentTool]:
    """At most ``limit`` tools, those whose names and descriptions share the most words with the
    goal first (ties keep their order): a small model reads a short list better."""
    tools = list(tools)
    if len(tools) <= limit:
        return tools
    words = set(_words(goal))

    def score(t: AgentTool) -> int:
        return len(words & set(_words(t.name + " " + t.description)))

    ranked = sorted(range(len(tools)), key=lambda i: -score(tools[i]))
    return [tools[i] for i in sorted(ranked[:limit])]


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if len(w) > 2]
