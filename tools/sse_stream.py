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
    import http.client
    from urllib.parse import urlsplit

    # The standard library's client, not httpx: on a 2-core machine the load generator shares the
    # CPUs with the server it measures, and httpx took ~0.3 ms of CPU per streamed token (1.3 ms
    # per step of 4 streams) where this takes a fraction of it; both servers are read the same way.
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    tokens = 0
    try:
        connection.request("POST", parts.path.rstrip("/") + "/v1/chat/completions",
                           json.dumps({**body, "stream": True}), {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {response.read(500)!r}")
        lines = (raw.decode().rstrip("\r\n") for raw in iter(response.readline, b""))
        for chunk in sse_chunks(lines):
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            choices = chunk.get("choices")
            if choices and choices[0].get("delta", {}).get("content"):
                stamps.append(time.perf_counter())
    finally:
        connection.close()
    return tokens
