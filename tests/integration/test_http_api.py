"""`edge-os serve --http` driven by the official openai client and by raw HTTP, on a tiny model.

The tiny model has random weights and a byte-level tokenizer: its text is gibberish, but greedy
decoding is deterministic, so streamed and non-streamed answers must agree byte for byte.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.http_service import HttpService


@pytest.fixture(scope="module")
def package(tiny_package_factory):
    """The tiny model with room for tool descriptions (its tokenizer spends a token per byte)."""
    return tiny_package_factory("q4f32", max_position_embeddings=2048)


@pytest.fixture(scope="module")
def service(package, tmp_path_factory):
    svc = HttpService(tmp_path_factory.mktemp("http"), [package], context=1024)
    yield svc
    assert svc.stop() == 0


@pytest.fixture(scope="module")
def model_name(package):
    return json.loads((package / "manifest.json").read_text())["name"]


@pytest.fixture
def client(service):
    return openai.OpenAI(base_url=service.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def sse_events(raw: bytes) -> list[str]:
    """The data fields of a server-sent event stream, checking its framing on the way."""
    text = raw.decode()
    assert text.endswith("\n\n")
    out = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        out.append(block[len("data: "):])
    return out


def test_chat_streamed_deltas_equal_the_greedy_answer(client, model_name):
    messages = [{"role": "user", "content": "Say something."}]
    whole = client.chat.completions.create(model=model_name, messages=messages, temperature=0, max_tokens=24)
    choice = whole.choices[0]
    assert whole.id.startswith("chatcmpl-") and whole.object == "chat.completion"
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(client.chat.completions.create(model=model_name, messages=messages, temperature=0, max_tokens=24,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_completion_streamed_and_not(client, model_name):
    whole = client.completions.create(model=model_name, prompt="Once upon a time", temperature=0, max_tokens=16)
    assert whole.object == "text_completion" and whole.choices[0].finish_reason in ("stop", "length")
    parts = list(client.completions.create(model=model_name, prompt="Once upon a time", temperature=0,
                                           max_tokens=16, stream=True))
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text
    assert parts[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_raw_sse_bytes(service, model_name):
    body = {"model": model_name, "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
            "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}}
    r = httpx.post(service.url + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    data = sse_events(r.content)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")


def test_models_health_ready_tokenize(service, client, model_name):
    models = client.models.list().data
    assert [m.id for m in models] == [model_name]
    card = httpx.get(service.url + "/v1/models").json()["data"][0]
    assert card["context_length"] == 1024 and card["quantization"] and card["memory"]["weight_bytes"] > 0
    assert httpx.get(service.url + "/health").json() == {"status": "ok"}
    assert httpx.get(service.url + "/ready").status_code == 200
    ids = httpx.post(service.url + "/tokenize", json={"model": model_name, "prompt": "héllo"}).json()["tokens"]
    assert len(ids) == len("héllo".encode())  # the tiny tokenizer has one token per byte
    back = httpx.post(service.url + "/detokenize", json={"model": model_name, "tokens": ids}).json()
    assert back["prompt"] == "héllo"


def error_of(r: httpx.Response) -> dict:
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
    ({"model": "MODEL", "messages": "hello"}, 400, "messages"),
    ({"model": "MODEL", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": 5}]}, 400, "messages"),
    ({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 400, "max_tokens"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}, 400, "max_tokens"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "temperature": -1}, 400, None),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "presence_penalty": 0.5}, 400,
     "presence_penalty"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}, 400, "stop"),
    ({"model": "MODEL", "messages": [{"role": "user", "content": "x"}], "frobnicate": 1}, 400, "frobnicate"),
    ({"model": "MODEL", "prompt": [1, 2, 3]}, 400, "prompt"),
])
def test_bad_input_is_a_4xx_error_object(service, model_name, body, status, param):
    path = "/v1/completions" if isinstance(body, dict) and "prompt" in body else "/v1/chat/completions"
    if isinstance(body, dict):
        if body.get("model") == "MODEL":
            body["model"] = model_name
        body = json.dumps(body).encode()
    r = httpx.post(service.url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    assert error_of(r)["param"] == param
    assert httpx.get(service.url + "/health").status_code == 200


def test_huge_body_and_long_prompt_then_still_serving(service, client, model_name):
    big = b'{"model": "x", "prompt": "' + b"a" * (10 << 20) + b'"}'
    r = httpx.post(service.url + "/v1/completions", content=big, timeout=60)
    assert r.status_code == 413 and error_of(r)["code"] == "body_too_large"
    with pytest.raises(openai.BadRequestError) as err:  # the context is 1024 tokens, one token per byte
        client.completions.create(model=model_name, prompt="b" * 1100, max_tokens=4)
    assert err.value.code == "context_length_exceeded"
    assert client.completions.create(model=model_name, prompt="ok", max_tokens=2).choices[0].text is not None


def test_metrics_parse_and_count_requests_without_prompt_text(service, client, model_name):
    from prometheus_client.parser import text_string_to_metric_families

    secret = "my-secret-prompt-text"
    client.completions.create(model=model_name, prompt=secret, max_tokens=3, temperature=0)
    text = httpx.get(service.url + "/metrics").text
    assert secret not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("edge_os_http_requests_total", (("endpoint", "completion"), ("outcome", "length")))] >= 1
    assert samples[("edge_os_generation_tokens_total", (("model", model_name),))] >= 3
    assert samples[("edge_os_time_to_first_token_seconds_count", (("model", model_name),))] >= 1
    assert samples[("edge_os_inter_token_latency_seconds_count", (("model", model_name),))] >= 2
    assert samples[("edge_os_request_duration_seconds_count", (("model", model_name),))] >= 1
    assert samples[("edge_os_requests_running", ())] == 0
    assert samples[("edge_os_memory_budget_bytes", ())] > 0
    assert samples[("edge_os_model_memory_bytes", (("model", model_name),))] > 0
    assert samples[("edge_os_kv_cache_reserved_tokens", (("model", model_name),))] == 0
    assert samples[("edge_os_governor_level", (("level", "NORMAL"),))] == 1
    assert ("edge_os_temperature_celsius", (("zone", "cpu-thermal"),)) in samples
    labels = {v for f in families.values() for s in f.samples for v in s.labels.values()}
    assert labels <= {model_name, "chat", "completion", "cpu-thermal", "+Inf", *OUTCOME_LABELS} | {
        k for k in labels if _is_number(k)}


def test_prefix_cache_hits_show_in_metrics_and_ps(service, client, model_name):
    """Two prompts sharing a 200-byte start (200 tokens with this byte-level tokenizer): the second
    starts from the first one's kept KV pages, and /metrics and `edge-os ps` say so."""
    from prometheus_client.parser import text_string_to_metric_families

    from edge_os.scheduler.report import format_status

    def cache_samples() -> dict[str, float]:
        text = httpx.get(service.url + "/metrics").text
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name.startswith("edge_os_prefix_cache") and s.labels == {"model": model_name}}

    before = cache_samples()
    shared = "".join(chr(ord("a") + i % 26) for i in range(200))
    for question in ("first question", "another one"):
        client.completions.create(model=model_name, prompt=shared + question, max_tokens=2, temperature=0)
    after = cache_samples()
    assert after["edge_os_prefix_cache_hits_total"] - before["edge_os_prefix_cache_hits_total"] == 1
    assert after["edge_os_prefix_cache_hit_tokens_total"] - before["edge_os_prefix_cache_hit_tokens_total"] >= 200
    assert after["edge_os_prefix_cache_tokens"] >= 200
    row = next(m for m in service.status()["models"] if m["name"] == model_name)
    assert row["prefix_cache"]["hits"] == after["edge_os_prefix_cache_hits_total"]
    line = next(line for line in format_status(service.status()).splitlines() if line.startswith("prefix cache:"))
    assert f"{model_name}: " in line and f"{row['prefix_cache']['hits']} hits" in line


OUTCOME_LABELS = {"stop", "length", "cancelled", "deadline", "client_gone", "error", "refused", "NORMAL", "SLOW_1",
                  "SLOW_2", "SLOW_3", "PAUSE_BACKGROUND", "FALLBACK", "REFUSE", "queue_full", "invalid_request",
                  "too_hot", "low_battery", "over_memory", "model_absent", "engine_error", "shutting_down",
                  "timeout", "other"}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


SCHEMA = {"type": "object", "properties": {"answer": {"const": "42"}, "ok": {"type": "boolean"}},
          "required": ["answer", "ok"], "additionalProperties": False}


def test_json_schema_response_format_streamed_and_not(client, model_name):
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("xgrammar")
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    messages = [{"role": "user", "content": "Answer."}]
    whole = client.chat.completions.create(model=model_name, messages=messages, response_format=fmt, seed=7,
                                           max_tokens=64)
    assert whole.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(whole.choices[0].message.content), SCHEMA)
    chunks = client.chat.completions.create(model=model_name, messages=messages, response_format=fmt, seed=7,
                                            max_tokens=64, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    obj = client.completions.create(model=model_name, prompt="{", max_tokens=64, temperature=0,
                                    extra_body={"response_format": fmt})
    jsonschema.validate(json.loads(obj.choices[0].text), SCHEMA)


@pytest.mark.parametrize("fmt, needle", [
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {
        "a": {"$ref": "#/definitions/missing"}}}}}, "missing"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": "not a schema"}}, "schema"),
    ({"type": "yaml"}, "response_format.type"),
])
def test_unusable_response_format_is_400_naming_it(client, model_name, fmt, needle):
    pytest.importorskip("xgrammar")
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "x"}],
                                       response_format=fmt, max_tokens=8)
    assert needle in err.value.message
    assert client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "x"}],
                                          max_tokens=2).choices


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"enum": ["Oslo", "Lima"]}, "days": {"type": "integer", "minimum": 1,
                                                                                  "maximum": 7}},
    "required": ["city", "days"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "maxLength": 6}}, "required": ["zone"]}}}
ASK = [{"role": "user", "content": "Weather in Oslo?"}]


def _check_call(call, tools):
    import jsonschema

    spec = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    assert call.type == "function" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), spec[call.function.name])


def test_forced_tool_calls_streamed_and_not(client, model_name):
    pytest.importorskip("xgrammar")
    named = {"type": "function", "function": {"name": "get_weather"}}
    whole = client.chat.completions.create(model=model_name, messages=ASK, tools=[WEATHER, TIME], tool_choice=named,
                                           max_tokens=200, temperature=0)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    _check_call(call, [WEATHER])
    chunks = list(client.chat.completions.create(model=model_name, messages=ASK, tools=[WEATHER, TIME],
                                                 tool_choice=named, max_tokens=200, temperature=0, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    # The first delta opens the call (id, type, name, no arguments yet); the rest carry argument text.
    assert (deltas[0].index, deltas[0].type, deltas[0].function.name, deltas[0].function.arguments) == (
        0, "function", "get_weather", "")
    assert deltas[0].id.startswith("call_") and all(d.id is None and d.function.name is None for d in deltas[1:])
    assert len(deltas) > 2  # streamed in pieces, not in one chunk at the end
    assert "".join(d.function.arguments for d in deltas) == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The client's own accumulation of the stream gives the non-streamed call.
    with client.chat.completions.stream(model=model_name, messages=ASK, tools=[WEATHER, TIME], tool_choice=named,
                                        max_tokens=200, temperature=0) as stream:
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    [acc] = final.message.tool_calls
    assert (acc.function.name, acc.function.arguments) == (call.function.name, call.function.arguments)
    for seed in range(3):
        out = client.chat.completions.create(model=model_name, messages=ASK, tools=[WEATHER, TIME],
                                             tool_choice="required", max_tokens=200, seed=seed)
        _check_call(out.choices[0].message.tool_calls[0], [WEATHER, TIME])


def test_auto_and_none_and_tool_results(client, model_name):
    pytest.importorskip("xgrammar")
    out = client.chat.completions.create(model=model_name, messages=ASK, tools=[WEATHER], tool_choice="none",
                                         max_tokens=8, temperature=0)
    assert out.choices[0].message.tool_calls is None and out.choices[0].message.content is not None
    for seed in range(3):  # random weights rarely call; whatever they call must be valid
        out = client.chat.completions.create(model=model_name, messages=ASK, tools=[WEATHER], max_tokens=48,
                                             seed=seed)
        for call in out.choices[0].message.tool_calls or []:
            _check_call(call, [WEATHER])
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Oslo", "days": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4 C and rain"},
    ]
    assert client.chat.completions.create(model=model_name, messages=history, tools=[WEATHER], max_tokens=8).choices


def test_raw_sse_bytes_of_a_streamed_tool_call(service, model_name):
    pytest.importorskip("xgrammar")
    body = {"model": model_name, "messages": ASK, "tools": [WEATHER], "tool_choice": "required", "max_tokens": 200,
            "temperature": 0, "stream": True}
    r = httpx.post(service.url + "/v1/chat/completions", json=body, timeout=60)
    events = sse_events(r.content)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert all(len(c) == 1 and c[0]["index"] == 0 for c in calls)
    opening = calls[0][0]
    assert set(opening) == {"index", "id", "type", "function"} and opening["function"] == {
        "name": "get_weather", "arguments": ""}
    assert all(set(c[0]) == {"index", "function"} and set(c[0]["function"]) == {"arguments"} for c in calls[1:])
    arguments = json.loads("".join(c[0]["function"]["arguments"] for c in calls))
    assert isinstance(arguments["city"], str)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    assert len({c["id"] for c in chunks}) == 1


@pytest.mark.parametrize("extra, param", [
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "none"}}]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_bad_tools_are_400(service, model_name, extra, param):
    body = {"model": model_name, "messages": ASK, **extra}
    r = httpx.post(service.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400 and error_of(r)["param"] == param
