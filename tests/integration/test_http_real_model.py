"""The HTTP API on the real default model (slow tier): streamed text equals the greedy answer, and
a json_schema is honoured by a model that was never told about it."""

from __future__ import annotations

import json

import openai
import pytest

from tests.integration.http_service import HttpService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(default_package, tmp_path_factory):
    svc = HttpService(tmp_path_factory.mktemp("http-real"), [default_package], context=512)
    name = json.loads((default_package / "manifest.json").read_text())["name"]
    client = openai.OpenAI(base_url=svc.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    yield client, name
    assert svc.stop() == 0


def test_streamed_deltas_concatenate_to_the_greedy_text(real):
    client, model = real
    messages = [{"role": "user", "content": "Name three herbs that grow in shade."}]
    whole = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=48)
    text = whole.choices[0].message.content
    assert len(text.split()) >= 3
    chunks = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=48, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_json_schema_const_is_honoured(real):
    pytest.importorskip("xgrammar")
    client, model = real
    schema = {"type": "object", "properties": {"answer": {"const": "42"}}, "required": ["answer"],
              "additionalProperties": False}
    for stream in (False, True):
        kwargs = {"model": model, "messages": [{"role": "user", "content": "What is six times seven?"}],
                  "max_tokens": 32, "temperature": 0,
                  "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                stream=True, **kwargs) if c.choices)
        else:
            text = client.chat.completions.create(**kwargs).choices[0].message.content
        assert json.loads(text) == {"answer": "42"}
    person = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 130}},
              "required": ["name", "age"], "additionalProperties": False}
    out = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Invent a person."}], max_tokens=48, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": person}})
    value = json.loads(out.choices[0].message.content)
    assert isinstance(value["name"], str) and 0 <= value["age"] <= 130


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                   "required": ["city"]}}}


def test_forced_and_automatic_tool_calls(real):
    pytest.importorskip("xgrammar")
    client, model = real
    ask = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    forced = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER], tool_choice="required",
                                            max_tokens=64, temperature=0)
    [call] = forced.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    auto = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER], max_tokens=64, temperature=0)
    choice = auto.choices[0]
    for call in choice.message.tool_calls or []:  # a call, if the model makes one, is always valid
        assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    assert choice.message.tool_calls or choice.message.content
    print("auto, no example:", choice.finish_reason, choice.message.content, choice.message.tool_calls)


def earlier_call(city: str) -> list[dict]:
    """One earlier exchange in which the assistant called the tool and answered from its result."""
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                             "arguments": json.dumps({"city": city})}}
    return [{"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 C, cloudy"},
            {"role": "assistant", "content": f"It is 12 C and cloudy in {city}."}]


def test_automatic_tool_call_after_one_earlier_call(real):
    """SmolLM2-135M never opens a call zero-shot (docs/http-api.md), but with one earlier call in
    the conversation it calls the tool, greedily, for a question that needs it, and answers a
    question that does not in text."""
    pytest.importorskip("xgrammar")
    jsonschema = pytest.importorskip("jsonschema")
    client, model = real
    history = earlier_call("Rome")
    ask = [*history, {"role": "user", "content": "What is the weather in Paris?"}]
    whole = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER], max_tokens=40, temperature=0)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    [call] = choice.message.tool_calls
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    assert call.function.name == "get_weather" and arguments["city"] == "Paris"
    with client.chat.completions.stream(model=model, messages=ask, tools=[WEATHER], max_tokens=40,
                                        temperature=0) as stream:
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in final.message.tool_calls] == [
        (call.function.name, call.function.arguments)]
    haiku = client.chat.completions.create(model=model, tools=[WEATHER], max_tokens=24, temperature=0, messages=[
        *history, {"role": "user", "content": "Write a haiku about the sea."}]).choices[0]
    assert haiku.message.tool_calls is None and haiku.message.content
