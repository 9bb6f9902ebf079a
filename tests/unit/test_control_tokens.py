"""ControlTokens: finds control-token strings as a regex alternation of them would (leftmost,
longest first), without compiling one."""

import re

import pytest

from edge_os.runtime.control_tokens import ControlTokens

TOKENS = ["<|im_start|>", "<|im_end|>", "<start_of_turn>", "<start>", "<unused1>", "<unused12>", "[INST]"]


def _by_regex(text: str, tokens: list[str]) -> list[tuple[int, int]]:
    pattern = re.compile("|".join(map(re.escape, sorted(tokens, key=len, reverse=True))))
    return [m.span() for m in pattern.finditer(text)]


@pytest.mark.parametrize("text", [
    "", "plain text", "<|im_start|>user\nhi<|im_end|>", "a<start_of_turn>b<start>c<start_of",
    "<unused12><unused1><unused123>", "<<|im_end|>>", "[INST][INST", "<|im_start|<|im_end|>", "ünï<start>cödé",
])
def test_spans_agree_with_a_regex_alternation(text):
    assert list(ControlTokens(TOKENS).spans(text)) == _by_regex(text, TOKENS)


def test_thousands_of_tokens_as_gemma_has():
    tokens = ["<pad>", "<eos>"] + [f"<unused{i}>" for i in range(6242)]
    text = "say <unused6241> or <unused99x> then <eos><pad>"
    assert list(ControlTokens(tokens).spans(text)) == _by_regex(text, tokens)


def test_first_and_empty():
    control = ControlTokens(TOKENS)
    assert control.first("x <start> <|im_end|>") == "<start>"
    assert control.first("nothing here") is None
    assert not ControlTokens([]) and not ControlTokens([""])
    assert list(ControlTokens([]).spans("<|im_start|>")) == []
