"""Response bodies and stream chunks in the shapes the official ``openai`` client parses."""

from __future__ import annotations

import json
from typing import Any

from edge_os.runtime.request import Usage
from edge_os.runtime.tools import CallArguments, CallStart, Piece


def usage(u: Usage) -> dict[str, int]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def completion(kind: str, rid: str, created: int, model: str, text: str | None, finish: str, u: Usage,
               tool_calls: list[dict] | None = None) -> dict[str, Any]:
    """The whole answer of a non-streamed request."""
    if kind == "chat":
        message = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice], "usage": usage(u)}


class ChunkWriter:
    """Server-sent events of one streamed request: every chunk carries the same id and created."""

    def __init__(self, kind: str, rid: str, created: int, model: str, include_usage: bool) -> None:
        self.kind = kind
        self.rid = rid
        self._head = {"id": rid, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                      "created": created, "model": model}
        self._include_usage = include_usage

    def first(self) -> bytes:
        """Chat streams open with the assistant's role and empty content; completions send nothing."""
        return self._choice({"delta": {"role": "assistant", "content": ""}}) if self.kind == "chat" else b""

    def text(self, text: str) -> bytes:
        return self._choice({"delta": {"content": text}} if self.kind == "chat" else {"text": text})

    def pieces(self, pieces: list[Piece]) -> bytes:
        """Text and tool-call deltas as the ``openai`` client accumulates them: a call's first delta
        has its ``index``, ``id``, ``type`` and name with empty arguments; then argument fragments
        with only ``index`` and ``function.arguments``."""
        out = []
        for p in pieces:
            if isinstance(p, CallStart):
                call = {"index": p.index, "id": p.id, "type": "function", "function": {"name": p.name, "arguments": ""}}
                out.append(self._choice({"delta": {"tool_calls": [call]}}))
            elif isinstance(p, CallArguments):
                call = {"index": p.index, "function": {"arguments": p.text}}
                out.append(self._choice({"delta": {"tool_calls": [call]}}))
            elif p:
                out.append(self.text(p))
        return b"".join(out)

    def finish(self, finish_reason: str, u: Usage) -> bytes:
        body = {"delta": {}} if self.kind == "chat" else {"text": ""}
        out = self._choice(body, finish_reason)
        if self._include_usage:
            out += event({**self._head, "choices": [], "usage": usage(u)})
        return out + b"data: [DONE]\n\n"

    def _choice(self, body: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, **body, "logprobs": None, "finish_reason": finish_reason}
        chunk = {**self._head, "choices": [choice]}
        if self._include_usage:
            chunk["usage"] = None
        return event(chunk)


def event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
