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
    assert engine.chat(messages, max_tokens=12, temperature=0) == chat_events[-1].text
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
    assert json.loads(text) == {"answer": "42"}
