"""The cloud worker's OpenAI-compatible backend against a local stub server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge_os.errors import MqttError
from edge_os.mqtt.openai_backend import OpenAIBackend
from edge_os.runtime.request import Finished, GenerationRequest, Refused, SamplingParams, TextDelta
from tests.integration.openai_stub import OpenAIStub, cloud_answer


@pytest.fixture
def stub():
    s = OpenAIStub()
    yield s
    s.close()


def test_streams_deltas_and_finishes_with_usage(stub: OpenAIStub):
    backend = OpenAIBackend(stub.url + "/v1", model="tiny", api_key="k")
    request = GenerationRequest(
        prompt="one two three", max_tokens=9, sampling=SamplingParams(temperature=0), stop=("\n",)
    )
    events = list(backend.submit(request).events(timeout=10))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    final = events[-1]
    assert isinstance(final, Finished)
    assert "".join(deltas) == final.text == cloud_answer("one two three")
    assert final.usage.prompt_tokens == 11 and final.finish_reason.value == "stop"
    body = stub.requests[0]
    assert body["model"] == "tiny" and body["max_tokens"] == 9 and body["stop"] == ["\n"]
    assert body["messages"] == [{"role": "user", "content": "one two three"}]


def test_a_plain_json_answer_works_too():
    class Plain(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"choices": [{"message": {"content": "plain"}, "finish_reason": "length"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = OpenAIBackend(f"http://127.0.0.1:{server.server_address[1]}")
        final = list(backend.submit(GenerationRequest(messages=({"role": "user", "content": "x"},))).events(10))[-1]
        assert (final.text, final.finish_reason.value) == ("plain", "length")
    finally:
        server.shutdown()
        server.server_close()


def test_http_errors_become_refusals_without_fallback(stub: OpenAIStub):
    backend = OpenAIBackend(stub.url + "/wrong-prefix")
    [event] = list(backend.submit(GenerationRequest(prompt="x")).events(timeout=10))
    assert isinstance(event, Refused) and event.code == "upstream_error" and not event.fallback
    assert "404" in event.reason


def test_only_http_urls():
    with pytest.raises(MqttError):
        OpenAIBackend("mqtt://x")
