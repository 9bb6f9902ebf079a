"""How a model's turn is written and constrained: a final answer, or calls to tools that exist.

Two formats, each with its grammar (an xgrammar constraint, as the HTTP API uses):

- ``json``: the whole turn is one JSON object, ``{"name": TOOL, "arguments": {...}}`` with
  arguments valid for that tool, or ``{"answer": "..."}``. A small model cannot wander off into
  prose that claims to have done something; every turn is a call or an explicit answer.
- ``tags``: the HTTP API's ``tool_choice: auto`` grammar (``edge_os.api.tools``): free text, and
  once the model writes ``<tool_call>`` only a valid call can follow.

Without the grammar (``constraint()`` is not applied), the same parser reads what the model wrote.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge_os.api.tools import CLOSE, OPEN, Tool, ToolUse
from edge_os.runtime.request import OutputConstraint

STYLES = ("json", "tags")
_CALL = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
_ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
           "additionalProperties": False}
INSTRUCTIONS = (
    "You control a device through these tools. To read a sensor or change an actuator, call a tool; "
    "its result comes back to you. Never say that something was read or changed unless a tool result says so."
)


class TurnFormat:
    def __init__(self, style: str, tools: tuple[Tool, ...]) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown turn style {style!r}; use one of {STYLES}")
        self.style, self.tools = style, tools

    def system_message(self) -> dict:
        listing = ToolUse(self.tools, "auto").system_message()["content"].split("\n")
        tools = "\n".join(listing[:-1])  # the tool lines, without the tags convention
        if self.style == "json":
            how = ('Answer with one JSON object: {"name": TOOL, "arguments": {...}} to call a tool, '
                   'or {"answer": "..."} when the goal is done.')
        else:
            how = (f'To call a tool, write {OPEN}{{"name": TOOL, "arguments": {{...}}}}{CLOSE}. '
                   "When the goal is done, answer in one short sentence without a tool call.")
        return {"role": "system", "content": f"{INSTRUCTIONS}\n{tools}\n{how}"}

    def constraint(self, require_call: bool = False) -> OutputConstraint:
        """The grammar of a turn; ``require_call``: a call and nothing else (no answer yet)."""
        if self.style == "tags":
            return ToolUse(self.tools, "required" if require_call else "auto").constraint()
        options = [_call_schema(t) for t in self.tools] + ([] if require_call else [_ANSWER])
        return OutputConstraint("json_schema", json.dumps({"anyOf": options}))

    def parse(self, text: str) -> tuple[str | None, list[tuple[Any, Any]]]:
        """``(answer, calls)``: the final answer when the turn makes no call, else the calls as
        ``(name, arguments)`` (a malformed call counts too: it comes back to the model as an error)."""
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                turn = json.loads(stripped)
            except json.JSONDecodeError:
                turn = None
            if isinstance(turn, dict) and "name" in turn:
                return None, [(turn.get("name"), turn.get("arguments", {}))]
            if isinstance(turn, dict) and isinstance(turn.get("answer"), str):
                return turn["answer"], []
            if self.style == "json":
                return None, [(None, stripped)]
        calls: list[tuple[Any, Any]] = []
        for raw in _CALL.findall(text):
            try:
                call = json.loads(raw)
            except json.JSONDecodeError:
                calls.append((None, raw))
                continue
            calls.append((call.get("name"), call.get("arguments", {})) if isinstance(call, dict) else (None, call))
        if not calls and OPEN in text:
            calls.append((None, text))  # cut short before its end tag
        return (None, calls) if calls else (stripped, [])


def _call_schema(tool: Tool) -> dict:
    return {"type": "object", "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["name", "arguments"], "additionalProperties": False}
