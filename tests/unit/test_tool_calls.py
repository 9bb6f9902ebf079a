"""Telling tool calls from text, whole and streamed: any split of an answer into deltas gives the
same text and the same calls as reading it at once, and nothing told early is taken back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_os.errors import ToolsError
from edge_os.runtime.tools import CallArguments, CallStart, chat_messages, parse_tools

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
AUTO = parse_tools([WEATHER, TIME], "auto")
FORCED = parse_tools([WEATHER, TIME], "required")

AUTO_ANSWERS = [
    'Let me look. <tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call>',
    '<tool_call>{"name": "get_weather", "arguments": {"city":"a}b</x"}}</tool_call> and '
    '<tool_call>{"name": "get_time", "arguments": {}}</tool_call> done',
    "No tools needed: <tool and </tool_call> are just text here.",
]
FORCED_ANSWERS = ['{"name":"get_weather","arguments":{"city":"Oslo }"}}', '{"name":"get_time","arguments":{}}']


def streamed(use, text: str, cuts: list[int]):
    """Feed ``text`` cut at ``cuts``; the pieces, merged per kind, and the parser."""
    parser = use.parser()
    pieces, at = [], 0
    for cut in sorted(set(cuts)) + [len(text)]:
        pieces += parser.feed(text[at:cut])
        at = cut
    pieces += parser.finish()
    content = "".join(p for p in pieces if isinstance(p, str))
    starts = [p for p in pieces if isinstance(p, CallStart)]
    args: dict[int, str] = {}
    for p in pieces:
        if isinstance(p, CallArguments):
            args[p.index] = args.get(p.index, "") + p.text
    return content, starts, args, parser


@pytest.mark.parametrize(("use", "text"), [(AUTO, t) for t in AUTO_ANSWERS] + [(FORCED, t) for t in FORCED_ANSWERS])
def test_whole_answers(use, text):
    content, calls = use.split(text)
    found = [(c.name, json.loads(c.arguments)) for c in calls]
    if use is FORCED:
        assert content is None and found == [(json.loads(text)["name"], json.loads(text)["arguments"])]
    elif "get_time" in text:
        assert found == [("get_weather", {"city": "a}b</x"}), ("get_time", {})] and content == "and  done"
    elif "Paris" in text:
        assert found == [("get_weather", {"city": "Paris"})] and content == "Let me look."
    else:
        assert found == [] and content == text


@given(st.data())
def test_any_split_gives_the_same_text_and_calls(data):
    use, text = data.draw(st.sampled_from([(AUTO, t) for t in AUTO_ANSWERS] + [(FORCED, t) for t in FORCED_ANSWERS]))
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    content, starts, args, parser = streamed(use, text, cuts)
    whole_content, whole_calls = use.split(text)
    assert (content.strip() or None) == whole_content
    assert [(s.index, s.id, s.name) for s in starts] == [(i, c.id, c.name) for i, c in enumerate(parser.calls)]
    assert [c.name for c in parser.calls] == [c.name for c in whole_calls]
    assert [args[i] for i in range(len(starts))] == [c.arguments for c in whole_calls]


def test_an_answer_cut_inside_a_call_has_no_calls():
    text = AUTO_ANSWERS[0][:-15]
    assert AUTO.split(text) == (text, [])
    assert FORCED.split(FORCED_ANSWERS[0][:-3]) == (FORCED_ANSWERS[0][:-3], [])


def test_bad_tools_and_messages_say_which_field():
    with pytest.raises(ToolsError) as err:
        parse_tools([WEATHER], {"type": "function", "function": {"name": "nope"}})
    assert err.value.param == "tool_choice"
    with pytest.raises(ToolsError, match="non-empty"):
        parse_tools([], None)
    assert parse_tools([WEATHER], "none") is None
    history = chat_messages([{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "4 C"}])
    assert history[0]["content"] == '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    assert history[1] == {"role": "tool", "content": "4 C"}


def test_blanks_before_the_arguments_are_not_part_of_them():
    text = '{"name": "get_weather", "arguments": {"city": "Lima"}}'
    whole = FORCED.split(text)[1][0].arguments
    assert whole == '{"city": "Lima"}'
    for cut in range(len(text)):
        assert streamed(FORCED, text, [cut])[2] == {0: whole}
