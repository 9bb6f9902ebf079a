"""The JSON grammars admit only UTF-8: the bytes of a surrogate code point are refused in every
kind of string (xgrammar's own character classes admit them; hypothesis found a model writing them)."""

from __future__ import annotations

import json

import pytest
import xgrammar

from edge_os.runtime.grammar import _compile_cached
from edge_os.runtime.request import OutputConstraint

SURROGATE = bytes([0xED, 0xA0, 0x80])  # U+D800 as (invalid) UTF-8
HAN = "中".encode()  # a real three-byte character


def _compiled(schema: dict):
    vocab = [bytes([b]) for b in range(256)]  # one token per byte: the matcher sees every byte
    compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo(vocab, vocab_type=xgrammar.VocabType.RAW))
    return _compile_cached(compiler, OutputConstraint("json_schema", json.dumps(schema)))


def _accepts(compiled, data: bytes) -> bool:
    matcher = xgrammar.GrammarMatcher(compiled)
    return all(matcher.accept_token(b) for b in data)


@pytest.mark.parametrize("string_schema", [{"type": "string"}, {"type": "string", "maxLength": 1}])
def test_surrogate_bytes_are_refused_in_strings(string_schema):
    compiled = _compiled({"type": "object", "properties": {"a": string_schema}, "required": ["a"],
                          "additionalProperties": False})
    assert _accepts(compiled, b'{"a": "' + HAN)
    assert not _accepts(compiled, b'{"a": "' + SURROGATE)
