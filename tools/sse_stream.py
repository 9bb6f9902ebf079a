"""Streamed OpenAI-style chat completions over HTTP, timed chunk by chunk, for the benchmarks.

Shared by tools/bench_http.py and tools/bench_serve_many.py: one place that reads the server-sent
events (``data: {...}`` lines, ending with ``data: [DONE]``) of edge-os and llama-server alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator


def sse_chunks(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON chunks of a stream's ``data:`` lines (other lines and ``[DONE]`` are skipped)."""
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


def stream_chat(url: str, body: dict, stamps: list[float], timeout: float = 900) -> int:
    """POST ``body`` (``stream`` is set) to ``url``/v1/chat/completions and read the stream to its end.

    Appends the ``time.perf_counter()`` of every chunk that carries content to ``stamps`` as it
    arrives (another thread may watch it grow), and returns the completion tokens the final usage
    chunk reports (0 when the server sent none: ask with ``stream_options.include_usage``).
    """
    import httpx

    tokens = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=timeout) as r:
        r.raise_for_status()
        for chunk in sse_chunks(r.iter_lines()):
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            choices = chunk.get("choices")
            if choices and choices[0].get("delta", {}).get("content"):
                stamps.append(time.perf_counter())
    return tokens
