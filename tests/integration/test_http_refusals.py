"""The HTTP API's refusals and cancellation on a real `edge-os serve --http` process.

A wider random model (32 layers of 256) decodes slowly enough that a 2,000-token request is still
running when the test acts on it.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.http_service import HttpService
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def slow_package(tiny_package_factory):
    return tiny_package_factory("q4f32", hidden_size=256, intermediate_size=1024, num_hidden_layers=32,
                                max_position_embeddings=4096)


def name_of(package) -> str:
    return json.loads((package / "manifest.json").read_text())["name"]


def long_request(model: str) -> dict:
    return {"model": model, "prompt": "go", "max_tokens": 2000, "ignore_eos": True, "stream": True}


def first_chunk(lines) -> dict:
    """The next chunk from ``lines`` (an iterator kept open: leaving httpx's own iterator early
    closes the connection)."""
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("the stream ended without a chunk")


def test_disconnect_cancels_the_request_and_frees_its_pages(tmp_path, slow_package):
    svc = HttpService(tmp_path, [slow_package], context=2048)
    try:
        with httpx.stream("POST", svc.url + "/v1/completions", json=long_request(name_of(slow_package)),
                          timeout=60) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            first_chunk(lines)
            wait_until(lambda: svc.status()["running"] == 1, 30, "the request running")
            first_chunk(lines)  # still streaming
        # The server says it cancelled the request (it did not run to its 2,000 tokens) ...
        svc.wait_log(r"went away after \d+ chunks; cancelled")
        # ... and gave back its KV pages.
        status = wait_until(lambda: (s := svc.status())["running"] == 0 and s, 30, "idle")
        model = status["models"][0]
        assert model["active"] == 0 and model["kv_reserved_tokens"] == 0
    finally:
        assert svc.stop() == 0


def test_queue_full_is_429_with_retry_after(tmp_path, slow_package):
    # One long request takes the model's whole KV pool; with no queue allowed, the next is refused.
    svc = HttpService(tmp_path, [slow_package], context=2048, env={"EDGE_OS_MAX_QUEUE": "0"})
    model = name_of(slow_package)
    try:
        with httpx.stream("POST", svc.url + "/v1/completions", json=long_request(model), timeout=60) as r:
            lines = r.iter_lines()
            first_chunk(lines)
            second = httpx.post(svc.url + "/v1/completions", json={**long_request(model), "stream": False},
                                timeout=60)
            assert first_chunk(lines)  # the first request goes on
        assert second.status_code == 429
        assert int(second.headers["retry-after"]) >= 1
        assert second.json()["error"]["code"] == "queue_full"
    finally:
        assert svc.stop() == 0


def test_too_hot_and_low_battery_are_503_with_the_reason(tmp_path, tiny_package):
    svc = HttpService(tmp_path, [tiny_package])
    client = openai.OpenAI(base_url=svc.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    model = name_of(tiny_package)
    try:
        assert client.completions.create(model=model, prompt="hi", max_tokens=2).choices
        svc.device.model.temp_c = 95.0
        svc.device.flush()
        wait_until(lambda: httpx.get(svc.url + "/ready").status_code == 503, 20, "unready when hot")
        with pytest.raises(openai.InternalServerError) as err:
            client.completions.create(model=model, prompt="hi", max_tokens=2)
        assert err.value.status_code == 503 and err.value.code == "too_hot"
        assert "C" in err.value.message  # the governor's reason names the temperature
        assert err.value.response.headers["retry-after"]

        svc.device.model.temp_c = 40.0
        svc.device.flush()
        svc.device.set_battery(5, "Discharging")
        with pytest.raises(openai.InternalServerError) as err:
            wait_until(lambda: client.completions.create(model=model, prompt="hi", max_tokens=2) and False, 30,
                       "refused on battery")
        assert err.value.code in ("low_battery", "too_hot")
        assert httpx.get(svc.url + "/health").status_code == 200  # liveness is not readiness
    finally:
        assert svc.stop() == 0


def test_a_queued_request_whose_client_left_never_starts(tmp_path, slow_package):
    # The first request holds the whole KV pool, so the second waits in the scheduler's queue.
    svc = HttpService(tmp_path, [slow_package], context=2048)
    model = name_of(slow_package)
    try:
        with httpx.stream("POST", svc.url + "/v1/completions", json=long_request(model), timeout=60) as r:
            lines = r.iter_lines()
            first_chunk(lines)
            queued = {**long_request(model), "stream": False}
            with pytest.raises(httpx.ReadTimeout):  # the client gives up while the request waits
                httpx.post(svc.url + "/v1/completions", json=queued, timeout=httpx.Timeout(60, read=1.5))
            svc.wait_log(r"client of cmpl-\w+ went away; cancelled")
            status = wait_until(lambda: (s := svc.status())["queue"]["waiting"] == 0 and s, 10, "dequeued")
            assert status["running"] == 1  # only the first request ever ran
            assert first_chunk(lines)
    finally:
        assert svc.stop() == 0
