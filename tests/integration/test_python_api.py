"""`Engine.complete` and `Engine.chat`, the simplest Python use, on a real tiny engine."""

from __future__ import annotations

import json

import pytest

import edge_os
from edge_os.errors import InputError
from edge_os.runtime.request import GenerationRequest, SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_package):
    eng = edge_os.Engine.load(tiny_package, threads=1, context_tokens=256)
    yield eng
    eng.close()


def test_complete_and_chat_return_the_greedy_text(engine):
    events = list(engine.generate(GenerationRequest(prompt="hello", max_tokens=12,
                                                    sampling=SamplingParams(temperature=0))))
    assert engine.complete("hello", max_tokens=12, temperature=0) == events[-1].text
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    chat_events = list(engine.generate(GenerationRequest(messages=tuple(messages), max_tokens=12,
                                                         sampling=SamplingParams(temperature=0))))
    reply = engine.chat(messages, max_tokens=12, temperature=0)
    assert reply.content == chat_events[-1].text and reply.tool_calls == ()
    assert reply.finish_reason == chat_events[-1].finish_reason.value
    assert reply.usage == chat_events[-1].usage
    assert engine.complete("hello", max_tokens=12, temperature=0.9, seed=5) == engine.complete(
        "hello", max_tokens=12, temperature=0.9, seed=5)


def test_stop_string_and_bad_options(engine):
    text = engine.complete("hello", max_tokens=30, temperature=0, ignore_eos=True)
    if len(text) > 3:
        assert engine.complete("hello", max_tokens=30, temperature=0, ignore_eos=True, stop=text[2:4]) == text[:2]
    with pytest.raises(InputError, match="unknown option"):
        engine.complete("hello", temprature=0)
    with pytest.raises(InputError, match="top_p"):
        engine.complete("hello", top_p=0)


def test_response_format(engine):
    pytest.importorskip("xgrammar")
    schema = {"type": "object", "properties": {"answer": {"const": "42"}}, "required": ["answer"]}
    text = engine.chat([{"role": "user", "content": "?"}], max_tokens=64,
                       response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert json.loads(text.content) == {"answer": "42"}


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def roomy_engine(tiny_package_factory):
    """The tiny model with room for tool descriptions (its tokenizer spends a token per byte)."""
    eng = edge_os.Engine.load(tiny_package_factory("q4f32", max_position_embeddings=2048), threads=1,
                              context_tokens=1024)
    yield eng
    eng.close()


def test_tools_come_back_as_typed_calls(roomy_engine):
    engine = roomy_engine
    pytest.importorskip("xgrammar")
    jsonschema = pytest.importorskip("jsonschema")
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    reply = engine.chat(ask, tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {
        "name": "get_weather"}}, max_tokens=200, temperature=0)
    assert reply.finish_reason == "tool_calls" and reply.content is None
    [call] = reply.tool_calls
    assert isinstance(call, edge_os.ToolCall) and call.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER["function"]["parameters"])
    for seed in range(3):  # sampled: any of the tools, always valid
        [call] = engine.chat(ask, tools=[WEATHER, TIME], tool_choice="required", max_tokens=200, seed=seed).tool_calls
        spec = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
        jsonschema.validate(json.loads(call.arguments), spec[call.name])
    history = [*ask, {"role": "assistant", "content": None, "tool_calls": [call.as_openai()]},
               {"role": "tool", "tool_call_id": call.id, "content": "4 C and rain"}]
    assert engine.chat(history, tools=[WEATHER], tool_choice="none", max_tokens=4).tool_calls == ()
    with pytest.raises(InputError, match="not among the tools"):
        engine.chat(ask, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(InputError, match="not both"):
        engine.chat(ask, tools=[WEATHER], response_format={"type": "json_object"})


def test_a_chat_session_keeps_one_return_type(engine):
    session = engine.chat_session()
    assert isinstance(session, edge_os.ChatSession)
    events = list(session.send("hello", max_tokens=4))
    assert isinstance(events[-1], edge_os.Finished) and len(session.messages) == 2
    session.close()
