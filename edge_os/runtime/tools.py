"""Tool calls: OpenAI-style ``tools``/``tool_choice`` in, typed calls out, the call grammar-constrained.

The tools are described to the model in a system message with one calling convention,
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (the Hermes/Qwen form many small
models were trained on). The output is constrained so every call is valid:

- ``required`` or a named function: the whole answer is one call, ``{"name": ..., "arguments":
  ...}``, whose arguments satisfy that tool's ``parameters`` schema;
- ``auto``: free text, but once the model writes ``<tool_call>`` only a call to an existing tool
  with valid arguments can follow (an xgrammar structural tag);
- ``none``: the tools are not offered and nothing is constrained.

``CallParser`` reads the answer as it is generated, so text, the start of each call (its id and
name) and its argument text can be streamed as they come; reading a whole answer at once gives
the same calls. Used by the HTTP API and ``Engine.chat``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from edge_os.errors import ToolsError
from edge_os.runtime.request import OutputConstraint, Usage

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
OPEN, CLOSE = "<tool_call>", "</tool_call>"
# A call's opening up to its arguments (the grammar writes exactly '{"name": "N", "arguments": ').
_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([A-Za-z0-9_-]{1,64})"\s*,\s*"arguments"\s*:\s*')
_SYSTEM = (
    "You are a helpful assistant with access to the tools below. When one of them can answer the user's "
    "request, call it: answer with {open}{{\"name\": NAME, \"arguments\": {{...}}}}{close} and nothing else, "
    "with arguments that match its parameters. Otherwise answer in plain text.\n"
    "<tools>\n{listing}\n</tools>"
)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: ``arguments`` is JSON text that satisfies the tool's schema."""

    id: str
    name: str
    arguments: str

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ChatReply:
    """``Engine.chat``'s answer: ``content`` is the text outside calls (``None`` when the model only
    called tools); ``finish_reason`` is ``stop``, ``length`` or ``tool_calls``."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    usage: Usage


@dataclass(frozen=True)
class CallStart:
    """Streaming: call number ``index`` has begun."""

    index: int
    id: str
    name: str


@dataclass(frozen=True)
class CallArguments:
    """Streaming: more of call ``index``'s argument text."""

    index: int
    text: str


Piece = str | CallStart | CallArguments  # a str is answer text outside calls


@dataclass(frozen=True)
class ToolUse:
    """What a request asked for: the tools and the choice (``auto``, ``required`` or a name)."""

    tools: tuple[Tool, ...]
    choice: str

    @property
    def forced(self) -> bool:
        return self.choice != "auto"

    def listing(self) -> str:
        """The tools, one compact JSON object a line (name, description, parameters)."""
        return "\n".join(json.dumps({"name": t.name, **({"description": t.description} if t.description else {}),
                                     "parameters": t.parameters}, separators=(",", ":")) for t in self.tools)

    def system_message(self) -> dict:
        return {"role": "system", "content": _SYSTEM.format(open=OPEN, close=CLOSE, listing=self.listing())}

    def prompt(self, messages: tuple[dict, ...]) -> tuple[dict, ...]:
        """``messages`` with the tools described in the system message (merged with the caller's)."""
        tools_message = self.system_message()
        if messages and messages[0]["role"] == "system":
            merged = {"role": "system", "content": tools_message["content"] + "\n\n" + messages[0]["content"]}
            return (merged, *messages[1:])
        return (tools_message, *messages)

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

    def parser(self) -> CallParser:
        return CallParser(self.forced)

    def split(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """A whole answer's text outside calls (``None`` when empty) and its calls. An answer cut
        short inside a call (``max_tokens``) has no calls: all of it is text."""
        parser = self.parser()
        pieces = parser.feed(text) + parser.finish()
        if not parser.complete:
            return text, []
        content = "".join(p for p in pieces if isinstance(p, str)).strip() or None
        return content, parser.calls


class CallParser:
    """Reads an answer piece by piece; ``feed`` and ``finish`` return what can be told so far.

    Text that might be the start of ``<tool_call>`` is held back until it is clear, and so is the
    tail of a call's arguments (its closing ``}`` and ``</tool_call>``), so every piece returned
    is final: the pieces of a streamed answer add up to those of the whole answer.
    """

    def __init__(self, forced: bool) -> None:
        self._forced = forced
        self._text = ""
        self._at = 0  # how much of _text has been told
        self._state = "head" if forced else "text"
        self._args_sent = 0
        self._name = ""
        self._id = ""
        self.calls: list[ToolCall] = []

    @property
    def complete(self) -> bool:
        """No call is half-written and every call's arguments are JSON."""
        return self._state == "text" or (self._forced and self._state == "done")

    def feed(self, text: str) -> list[Piece]:
        self._text += text
        return self._advance(final=False)

    def finish(self) -> list[Piece]:
        return self._advance(final=True)

    def _advance(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while True:
            pending = self._text[self._at:]
            if self._state == "text":
                i = pending.find(OPEN)
                if i < 0:
                    keep = 0 if final else _partial_suffix(pending, OPEN)
                    if len(pending) > keep:
                        out.append(pending[:len(pending) - keep])
                        self._at += len(pending) - keep
                    return out
                if i:
                    out.append(pending[:i])
                self._at += i + len(OPEN)
                self._state = "head"
            elif self._state == "head":
                m = _HEAD.match(pending)
                if m is None:
                    if final:  # never became a call: it stays unparsed (and the answer incomplete)
                        self._state = "broken"
                    return out
                self._name, self._id = m.group(1), "call_" + uuid.uuid4().hex[:24]
                out.append(CallStart(len(self.calls), self._id, self._name))
                self._at += m.end()
                self._state, self._args_sent = "args", 0
            elif self._state == "args":
                lead = len(pending) - len(pending.lstrip())
                if lead and not self._args_sent:  # blanks before the arguments are not theirs
                    self._at += lead
                    continue
                end = len(pending) if self._forced else pending.find(CLOSE)
                closed = end >= 0 and (final or not self._forced)
                body = pending[:end] if closed else pending[:len(pending) - _partial_suffix(pending, CLOSE)]
                body = body.rstrip()
                if closed:
                    body = body[:-1].rstrip() if body.endswith("}") else body + "\0"  # \0: not JSON
                else:
                    body = body.rstrip("} \t\r\n")  # the call's own "}" may be among these
                if len(body) > self._args_sent and not body.endswith("\0"):
                    out.append(CallArguments(len(self.calls), body[self._args_sent:]))
                    self._args_sent = len(body)
                if not closed:
                    if final:
                        self._state = "broken"
                    return out
                if not _is_json(body):
                    self._state = "broken"
                    return out
                self.calls.append(ToolCall(self._id, self._name, body))
                self._at += len(pending) if self._forced else end + len(CLOSE)
                self._state = "done" if self._forced else "text"
            else:  # done or broken: the rest is not read
                return out


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that begins ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _call_schema(tool: Tool) -> dict:
    return {"type": "object", "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["name", "arguments"], "additionalProperties": False}


def calls_text(calls: list[dict]) -> str:
    """An assistant's earlier tool calls (OpenAI's ``tool_calls``), written back in the form the
    model was asked to use."""
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(fn.get("arguments"), str):
            raise ToolsError('tool_calls must be a list of {"function": {"name", "arguments"}}', "messages")
        try:
            arguments = json.loads(fn["arguments"])
        except json.JSONDecodeError:
            raise ToolsError("tool_calls: arguments must be a JSON text", "messages") from None
        out.append(f'{OPEN}{json.dumps({"name": fn["name"], "arguments": arguments})}{CLOSE}')
    return "".join(out)


def chat_messages(messages: Any) -> tuple[dict, ...]:
    """Chat messages for the template: ``role`` and ``content`` only, an assistant's earlier
    ``tool_calls`` written into its content and ``tool`` results kept as ``tool`` messages."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ToolsError('messages must be a non-empty list of {"role": ..., "content": ...}', "messages")
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise ToolsError('each chat message must be {"role": str, "content": str}', "messages")
        content = m.get("content")
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            content = (content or "") + calls_text(calls if isinstance(calls, (list, tuple)) else [None])
        out.append({"role": m.get("role"), "content": content})
    return tuple(out)


def parse_tools(raw: Any, choice: Any) -> ToolUse | None:
    """OpenAI's ``tools`` and ``tool_choice`` (``None``: no tools in play); ``ToolsError`` names
    what is wrong."""
    if raw is None:
        if choice not in (None, "none", "auto"):
            raise ToolsError("tool_choice needs tools", "tool_choice")
        return None
    if not isinstance(raw, list) or not raw:
        raise ToolsError('"tools" must be a non-empty list of {"type": "function", "function": {...}}', "tools")
    tools = []
    for i, item in enumerate(raw):
        fn = item.get("function") if isinstance(item, dict) and item.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not _NAME.match(fn["name"]):
            raise ToolsError(f'tools[{i}] must be {{"type": "function", "function": {{"name": "a_name", ...}}}} '
                             "with a name of letters, digits, _ or - (at most 64)", "tools")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise ToolsError(f"tools[{i}].function.parameters must be a JSON Schema object", "tools")
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise ToolsError(f"tools[{i}].function.description must be a string", "tools")
        tools.append(Tool(fn["name"], description, params))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise ToolsError("tool names must be unique", "tools")
    if choice is None:
        choice = "auto"
    if isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if name not in names:
            raise ToolsError(f"tool_choice names {name!r}, which is not among the tools {names}", "tool_choice")
        choice = name
    elif choice not in ("none", "auto", "required"):
        raise ToolsError('tool_choice must be "none", "auto", "required" or {"type": "function", "function": '
                         '{"name": ...}}', "tool_choice")
    if choice == "none":
        return None
    return ToolUse(tuple(tools), choice)
