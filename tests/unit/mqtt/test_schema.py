import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_os.errors import InputError
from edge_os.mqtt import schema
from edge_os.mqtt.schema import RequestRejected, parse_request
from edge_os.runtime.request import Priority


def parse(body, **kw):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(payload, request_id="r1", **kw)


def test_a_full_request_maps_onto_generation_request():
    req = parse(
        {
            "prompt": "hi",
            "model": "smollm2-135m",
            "max_tokens": 12,
            "temperature": 0,
            "top_p": 0.5,
            "stop": "\n",
            "stream": True,
            "priority": "background",
        },
        deadline=123.0,
    )
    g = req.generation
    assert (g.prompt, g.model, g.max_tokens, g.stop, g.priority, g.deadline, g.request_id) == (
        "hi", "smollm2-135m", 12, ("\n",), Priority.BACKGROUND, 123.0, "r1",
    )  # fmt: skip
    assert g.sampling.greedy and g.sampling.top_p == 0.5
    assert req.stream is True
    assert req.fields["stop"] == ["\n"]


def test_chat_messages_and_defaults():
    req = parse({"messages": [{"role": "user", "content": "hello"}]})
    assert req.generation.messages == ({"role": "user", "content": "hello"},)
    assert req.stream is False and req.generation.max_tokens == 256
    assert req.generation.priority is Priority.INTERACTIVE


@pytest.mark.parametrize(
    "body, code",
    [
        (b"{oops", "invalid_json"),
        (b"\xff\xfe", "invalid_encoding"),
        ([1, 2], "invalid_request"),
        ({}, "invalid_request"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "invalid_request"),
        ({"prompt": 5}, "invalid_request"),
        ({"prompt": "a", "max_tokens": 0}, "invalid_request"),
        ({"prompt": "a", "max_tokens": True}, "invalid_request"),
        ({"prompt": "a", "max_tokens": 2.5}, "invalid_request"),
        ({"prompt": "a", "temperature": "hot"}, "invalid_request"),
        ({"prompt": "a", "top_p": 0}, "invalid_request"),
        ({"prompt": "a", "stop": [""]}, "invalid_request"),
        ({"prompt": "a", "priority": "urgent"}, "invalid_request"),
        ({"prompt": "a", "stream": "yes"}, "invalid_request"),
        ({"prompt": "a", "maxtokens": 5}, "invalid_request"),
        ({"messages": []}, "invalid_request"),
        ({"messages": [{"role": "user"}]}, "invalid_request"),
    ],
)
def test_bad_requests_are_rejected_with_a_code(body, code):
    with pytest.raises(RequestRejected) as info:
        parse(body)
    assert info.value.code == code


def test_size_limit_and_unknown_model():
    with pytest.raises(RequestRejected) as info:
        parse({"prompt": "x" * 100}, max_bytes=50)
    assert info.value.code == "payload_too_large"
    with pytest.raises(RequestRejected) as info:
        parse({"prompt": "x", "model": "llama-405b"}, models=("smollm2-135m",))
    assert info.value.code == "unknown_model"
    assert parse({"prompt": "x", "model": "llama-405b"}).generation.model == "llama-405b"  # no list: any


@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_parse_or_are_rejected(payload):
    try:
        parse_request(payload, request_id="r")
    except RequestRejected:
        pass


@given(
    st.dictionaries(
        st.sampled_from(sorted(schema.REQUEST_FIELDS)),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
        | st.lists(st.text(max_size=3), max_size=2),
    )
)
def test_arbitrary_field_values_either_parse_or_are_rejected(body):
    try:
        parse(body)
    except RequestRejected:
        pass


def test_answers_round_trip():
    usage = {"prompt_tokens": 1, "completion_tokens": 2}
    final = json.loads(schema.final("t", "stop", usage, "cloud", reason_code="too_hot", reason="hot"))
    assert final == {
        "type": "final", "text": "t", "finish_reason": "stop", "usage": {"prompt_tokens": 1, "completion_tokens": 2},
        "served_by": "cloud", "reason_code": "too_hot", "reason": "hot",
    }  # fmt: skip
    assert "reason" not in json.loads(schema.final("t", "stop", {}, "local"))
    assert schema.parse_answer(schema.delta(3, "x")) == {"type": "delta", "seq": 3, "text": "x"}
    assert schema.parse_answer(schema.error("c", "m"))["code"] == "c"
    for bad in (b"[]", b'{"type": "final"}', b"nope", b'{"type": "other"}'):
        with pytest.raises(InputError):
            schema.parse_answer(bad)


def test_response_format_becomes_an_output_constraint_and_travels_to_the_cloud():
    from edge_os.mqtt.openai_backend import OpenAIBackend

    fmt = {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "integer"}}}
    req = parse({"prompt": "hi", "response_format": fmt})
    assert req.generation.constraint.kind == "json_schema"
    assert json.loads(req.generation.constraint.schema) == {"type": "integer"}
    assert req.fields["response_format"] == fmt  # forwarded as given
    body = OpenAIBackend("http://127.0.0.1:9/v1").body(req.generation)
    assert body["response_format"]["json_schema"]["schema"] == {"type": "integer"}
    request = parse({"prompt": "hi", "response_format": {"type": "json_object"}})
    assert request.generation.constraint.kind == "json_object"
    with pytest.raises(RequestRejected) as err:
        parse({"prompt": "hi", "response_format": {"type": "xml"}})
    assert err.value.code == "invalid_request"
