"""Tool calls: OpenAI ``tools``/``tool_choice`` in, ``tool_calls`` out, the call grammar-constrained.

The tools are described to the model in a system message with one calling convention,
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (the Hermes/Qwen form many small
models were trained on). The output is constrained so every call is valid:

- ``required`` or a named function: the whole answer is one call, ``{"name": ..., "arguments":
  ...}``, whose arguments satisfy that tool's ``parameters`` schema;
- ``auto``: free text, but once the model writes ``<tool_call>`` only a call to an existing tool
  with valid arguments can follow (an xgrammar structural tag);
- ``none``: the tools are not offered and nothing is constrained.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from edge_os.api.errors import bad_request
from edge_os.runtime.request import OutputConstraint

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_CALL = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolUse:
    """What a request asked for: the tools and the choice (``auto``, ``required`` or a name)."""

    tools: tuple[Tool, ...]
    choice: str

    @property
    def forced(self) -> bool:
        return self.choice != "auto"

    def system_message(self) -> dict:
        listing = "\n".join(json.dumps({"name": t.name, **({"description": t.description} if t.description else {}),
                                        "parameters": t.parameters}, separators=(",", ":")) for t in self.tools)
        return {"role": "system", "content": (
            "You can call these tools:\n" + listing + "\nTo call one, answer with "
            f'{OPEN}{{"name": NAME, "arguments": {{...}}}}{CLOSE}.')}

    def constraint(self) -> OutputConstraint:
        if self.forced:
            options = [_call_schema(t) for t in self.tools if self.choice in ("required", t.name)]
            schema = options[0] if len(options) == 1 else {"anyOf": options}
            return OutputConstraint("json_schema", json.dumps(schema))
        tags = [{"type": "tag", "begin": f'{OPEN}{{"name": {json.dumps(t.name)}, "arguments": ',
                 "content": {"type": "json_schema", "json_schema": t.parameters}, "end": "}" + CLOSE}
                for t in self.tools]
        tag = {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": [OPEN], "tags": tags,
                                                    "at_least_one": False, "stop_after_first": False}}
        return OutputConstraint("structural_tag", json.dumps(tag))

    def split(self, text: str) -> tuple[str | None, list[dict]]:
        """The answer's text and its calls, in the ``tool_calls`` shape."""
        if self.forced:
            found = [text]
            content = None
        else:
            found = _CALL.findall(text)
            content = _CALL.sub("", text).strip() or None
        calls = []
        for raw in found:
            try:
                call = json.loads(raw)
                calls.append({"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                              "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}})
            except (json.JSONDecodeError, KeyError, TypeError):  # cut short by max_tokens
                return text, []
        return content, calls


def _call_schema(tool: Tool) -> dict:
    return {"type": "object", "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["name", "arguments"], "additionalProperties": False}


def parse_tools(data: dict[str, Any]) -> ToolUse | None:
    """``tools`` and ``tool_choice`` of a chat request (``None``: no tools in play)."""
    raw, choice = data.get("tools"), data.get("tool_choice")
    if raw is None:
        if choice not in (None, "none", "auto"):
            raise bad_request("tool_choice needs tools", "tool_choice")
        return None
    if not isinstance(raw, list) or not raw:
        raise bad_request('"tools" must be a non-empty list of {"type": "function", "function": {...}}', "tools",
                          "invalid_type")
    tools = []
    for i, item in enumerate(raw):
        fn = item.get("function") if isinstance(item, dict) and item.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not _NAME.match(fn["name"]):
            raise bad_request(f'tools[{i}] must be {{"type": "function", "function": {{"name": "a_name", ...}}}} '
                              "with a name of letters, digits, _ or - (at most 64)", "tools")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise bad_request(f"tools[{i}].function.parameters must be a JSON Schema object", "tools", "invalid_type")
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise bad_request(f"tools[{i}].function.description must be a string", "tools", "invalid_type")
        tools.append(Tool(fn["name"], description, params))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise bad_request("tool names must be unique", "tools")
    if choice is None:
        choice = "auto"
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if name not in names:
            raise bad_request(f"tool_choice names {name!r}, which is not among the tools {names}", "tool_choice")
        choice = name
    elif choice not in ("none", "auto", "required"):
        raise bad_request('tool_choice must be "none", "auto", "required" or {"type": "function", "function": '
                          '{"name": ...}}', "tool_choice")
    if choice == "none":
        return None
    return ToolUse(tuple(tools), choice)
