from __future__ import annotations

import json

from tokenizers import Tokenizer

from edge_os.runtime.text_stream import TextStream
from tests.tiny_model import byte_tokenizer


def tokenizer():
    return Tokenizer.from_str(json.dumps(byte_tokenizer()))


def feed(stream: TextStream, text: str) -> list[str]:
    tok = stream.tokenizer
    return [stream.push(i) for i in tok.encode(text, add_special_tokens=False).ids]


def test_multibyte_characters_wait_for_their_last_byte():
    stream = TextStream(tokenizer())
    pieces = feed(stream, "é€")  # 2 + 3 bytes, one token each
    assert pieces == ["", "é", "", "", "€"]


def test_stop_string_is_held_back_then_cut():
    stream = TextStream(tokenizer(), stop=("END",))
    pieces = feed(stream, "abcENDxyz")
    assert "".join(pieces) == "abc"
    assert stream.stopped and stream.text == "abc"


def test_held_back_prefix_is_released_when_it_is_not_a_stop():
    stream = TextStream(tokenizer(), stop=("END",))
    pieces = feed(stream, "aEN")
    assert "".join(pieces) == "a"
    assert stream.flush() == "EN"
