"""Cloud fallback over HTTP: a hot device hands requests to an OpenAI-compatible cloud (the stub
server), whose answer reaches the official client streamed and not, marked in response headers,
redacted on the way out and counted by reason in /metrics."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.http_service import HttpService
from tests.integration.openai_stub import OpenAIStub, cloud_answer
from tests.integration.test_http_refusals import name_of
from tests.waiting import wait_until

SECRET = "Alice Smith (alice@example.com) asks: is the boiler safe above 80 C?"
REDACTED = "[NAME] ([EMAIL]) asks: is the boiler safe above 80 C?"


def make_hot(svc: HttpService) -> None:
    svc.device.model.temp_c = 95.0
    svc.device.flush()
    # With a cloud, a hot device is still ready: its requests go to the cloud, and /ready says so.
    wait_until(lambda: httpx.get(svc.url + "/ready").json().get("served_by") == "cloud", 20, "ready via the cloud")


def fallbacks(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(url + "/metrics").text
    return {(s.labels["reason"], s.labels["outcome"]): s.value for f in text_string_to_metric_families(text)
            if f.name == "edge_os_cloud_fallbacks" for s in f.samples if s.name.endswith("_total")}


def test_a_hot_device_answers_with_the_clouds_answer(tmp_path, tiny_package):
    stub = OpenAIStub()
    svc = HttpService(tmp_path, [tiny_package], "--cloud-url", stub.url, "--cloud-model", "big-cloud-model",
                      "--redact-name", "Alice Smith")
    client = openai.OpenAI(base_url=svc.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    model = name_of(tiny_package)
    ask = [{"role": "user", "content": SECRET}]
    try:
        local = client.chat.completions.with_raw_response.create(model=model, messages=ask, max_tokens=4)
        assert local.headers["x-edge-os-served-by"] == "local"
        assert stub.requests == []
        make_hot(svc)

        raw = client.chat.completions.with_raw_response.create(model=model, messages=ask, max_tokens=40)
        assert raw.headers["x-edge-os-served-by"] == "cloud"
        assert raw.headers["x-edge-os-fallback-reason"] == "too_hot"
        assert "C" in raw.headers["x-edge-os-fallback-detail"]  # the governor's reason names the temperature
        answer = raw.parse()
        assert answer.choices[0].message.content == cloud_answer(REDACTED)
        assert answer.choices[0].finish_reason == "stop" and answer.usage.prompt_tokens == 11

        with client.chat.completions.with_streaming_response.create(model=model, messages=ask, max_tokens=40,
                                                                    stream=True) as streamed:
            assert streamed.headers["x-edge-os-served-by"] == "cloud"
            chunks = list(streamed.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == cloud_answer(REDACTED)
        assert len({c.id for c in chunks}) == 1 and chunks[-1].choices[0].finish_reason == "stop"

        done = client.completions.create(model=model, prompt="call me at +1 415 555 0100", max_tokens=40)
        assert done.choices[0].text == cloud_answer("call me at [PHONE]")

        # What left the device: redacted, asked of the configured cloud model.
        assert len(stub.requests) == 3
        assert {body["model"] for body in stub.requests} == {"big-cloud-model"}
        sent = json.dumps(stub.requests)
        for leaked in ("Alice", "alice@example.com", "555"):
            assert leaked not in sent
        assert fallbacks(svc.url) == {("too_hot", "stop"): 3.0}
    finally:
        assert svc.stop() == 0
        stub.close()


def test_a_cloud_that_fails_is_a_502_naming_both_reasons(tmp_path, tiny_package):
    stub = OpenAIStub()
    stub.close()  # nothing listens at its address any more
    svc = HttpService(tmp_path, [tiny_package], "--cloud-url", stub.url)
    model = name_of(tiny_package)
    try:
        make_hot(svc)
        r = httpx.post(svc.url + "/v1/chat/completions", timeout=60,
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert error["code"] == "cloud_error" and "too_hot" in error["message"]
        assert r.headers["x-edge-os-fallback-reason"] == "too_hot"
        assert fallbacks(svc.url) == {("too_hot", "error"): 1.0}
        assert httpx.get(svc.url + "/health").status_code == 200
    finally:
        assert svc.stop() == 0


@pytest.mark.parametrize(("argv", "needle"), [
    (["--cloud-url", "http://127.0.0.1:9"], "--cloud-url and --cloud-model are for --http"),
    (["--http", "0", "--cloud-url", "ftp://cloud"], "must be an http:// or https:// URL"),
])
def test_bad_cloud_options_are_one_error_line(tmp_path, argv, needle):
    proc = subprocess.run([sys.executable, "-m", "edge_os.cli.main", "serve", *argv, "--socket", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-os: error:")]
    assert proc.returncode == 1 and len(errors) == 1 and needle in errors[0], proc.stderr
