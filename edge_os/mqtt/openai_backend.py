"""A backend that answers through any OpenAI-compatible server (``POST /v1/chat/completions``).

It streams (server-sent events) so deltas flow through as the server produces them; servers
that ignore ``stream`` and answer with one JSON body work too. Plain stdlib ``urllib``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from edge_os.errors import MqttError
from edge_os.mqtt.backends import ThreadedHandle, cancelled
from edge_os.runtime.request import Event, Finished, FinishReason, GenerationRequest, TextDelta, Timings, Usage

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class OpenAIBackend:
    def __init__(
        self, base_url: str, *, api_key: str | None = None, model: str | None = None, timeout_s: float = 300.0
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise MqttError(f"--openai-url {base_url!r} must be an http:// or https:// URL")
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/v1/chat/completions"
        self._api_key = api_key
        self._model = model
        self._timeout_s = timeout_s
        self._served = 0

    def submit(self, request: GenerationRequest) -> ThreadedHandle:
        return ThreadedHandle(request, self._complete)

    def status(self) -> dict:
        return {"backend": "openai", "url": self.url, "served": self._served}

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The chat-completions request for ``request``."""
        if request.messages is not None:
            messages = list(request.messages)
        else:
            messages = [{"role": "user", "content": request.prompt}]
        body: dict[str, Any] = {
            "model": request.model or self._model or "default",
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.constraint is not None and request.constraint.kind != "structural_tag":
            # A structural tag (free text with tool calls) has no OpenAI form: the server gets the
            # request's tool prompt and its answer is parsed as a local one would be.
            c = request.constraint
            body["response_format"] = {"type": "json_object"} if c.schema is None else {
                "type": "json_schema", "json_schema": {"name": "response", "schema": json.loads(c.schema)}}
        return body

    def _complete(self, request: GenerationRequest, cancelled_flag: threading.Event) -> Iterator[Event]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http_request = urllib.request.Request(
            self.url, data=json.dumps(self.body(request)).encode(), headers=headers, method="POST"
        )
        started = time.monotonic()
        try:
            response = urllib.request.urlopen(http_request, timeout=self._timeout_s)
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode(errors="replace")
            raise MqttError(f"{self.url} answered HTTP {exc.code}: {detail}") from None
        with response:
            if response.headers.get_content_type() == "text/event-stream":
                chunks = _sse_chunks(response)
            else:
                chunks = iter([json.load(response)])
            text, finish, usage = [], FinishReason.STOP, Usage(0, 0)
            for chunk in chunks:
                if cancelled_flag.is_set():
                    yield cancelled("".join(text))
                    return
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or choice.get("message") or {}).get("content") or ""
                    if piece:
                        text.append(piece)
                        yield TextDelta(piece, ())
                    finish = _FINISH.get(choice.get("finish_reason") or "", finish)
                if chunk.get("usage"):
                    counts = chunk["usage"]
                    usage = Usage(int(counts.get("prompt_tokens", 0)), int(counts.get("completion_tokens", 0)))
        elapsed = time.monotonic() - started
        self._served += 1
        timings = Timings(elapsed, 0.0, usage.completion_tokens / max(elapsed, 1e-9))
        yield Finished("".join(text), (), finish, usage, timings)


def _sse_chunks(response) -> Iterator[dict]:
    """JSON objects from ``data:`` lines of a server-sent-event stream, until ``[DONE]``."""
    for raw in response:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)
