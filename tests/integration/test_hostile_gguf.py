"""Malformed and hostile GGUF files: `edge-os pack` refuses each in one line, in bounded time and
memory (the child runs under RLIMIT_AS of 1 GiB; before these checks several ran for minutes and
took gigabytes, others ended in a traceback)."""

from __future__ import annotations

import pytest

from edge_os.convert.importers import open_source
from edge_os.models.registry import get_architecture
from tests.bounded_cli import assert_one_line_error, run_edge_os
from tests.gguf_craft import ARR, I32, STR, U32, gguf_bytes, tiny_metadata, tiny_tensors, write

BOUND_S = 30.0


def _pack(tmp_path, data: bytes):
    source = write(tmp_path / "model.gguf", data)
    result = run_edge_os("pack", str(source), "--out", str(tmp_path / "pkg"), "--no-progress")
    assert not (tmp_path / "pkg").exists()
    return result


def test_the_crafted_base_file_is_valid(tmp_path):
    """The files below differ from this one in one field, so each error is that field's."""
    path = write(tmp_path / "base.gguf", gguf_bytes(tiny_metadata(), tiny_tensors()))
    source = open_source(path)
    arch = get_architecture(source.architecture)
    config = arch.config_from_hf(source.hf_config)
    arch.check_shapes(path, config, {t.name: t.shape for t in source.tensors()})
    assert config.vocab_size == 259 and config.num_hidden_layers == 2


HEADER_CASES = {
    # A 53-byte file whose array claims 10^9 strings (used 3.7 GB).
    "array_of_a_billion": (lambda: gguf_bytes([("x", ARR, (STR, [], 10**9))]), "declares 1000000000 elements"),
    "token_type_of_a_billion": (
        lambda: gguf_bytes(tiny_metadata(tokenizer__ggml__token_type=(ARR, (I32, [1], 10**9)))),
        "declares 1000000000 elements"),
    "vocabulary_of_millions": (
        lambda: gguf_bytes(tiny_metadata(tokenizer__ggml__tokens=(ARR, (STR, ["a"], 3_000_000)))),
        "tokenizer.ggml.tokens declares 3000000 elements"),
    "vocabulary_longer_than_the_file": (
        lambda: gguf_bytes(tiny_metadata(tokenizer__ggml__tokens=(ARR, (STR, ["a"], 600_000)))),
        "tokenizer.ggml.tokens's 600000 strings needs 4800000 bytes"),
    "tensor_count_lies": (lambda: gguf_bytes(tiny_metadata(), tensor_count=10**6), "declares 1000000 tensors"),
    "truncated_tensor_data": (lambda: gguf_bytes(tiny_metadata(), tiny_tensors())[:-4096], "truncated"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_counts_are_checked_against_the_file_before_allocating(tmp_path, case):
    make, fragment = HEADER_CASES[case]
    assert_one_line_error(_pack(tmp_path, make()), fragment, bound_s=BOUND_S)


METADATA_CASES = {
    "block_count_a_million": ({"llama__block_count": (U32, 10**6)}, "llama.block_count is 1000000, outside 1..512"),
    "missing_embedding_length": ({"llama__embedding_length": None}, "lacks llama.embedding_length"),
    "head_count_zero": ({"llama__attention__head_count": (U32, 0)}, "llama.attention.head_count is 0"),
    "head_count_a_string": ({"llama__attention__head_count": (STR, "many")}, "is 'many', not a number"),
    "embedding_length_2_31": ({"llama__embedding_length": (U32, 2**31 - 1)}, "is 2147483647, outside 1..65536"),
    "token_type_shorter_than_vocab": ({"tokenizer__ggml__token_type": (ARR, (I32, [1, 1, 1], None))},
                                      "token_type has 3 entries for 259 tokens"),
    "merge_without_a_space": ({"tokenizer__ggml__merges": (ARR, (STR, ["abc"], None))}, "merge 'abc'"),
    "merge_of_unknown_tokens": ({"tokenizer__ggml__merges": (ARR, (STR, ["zz qq"], None))},
                                "its tokenizer cannot be built"),
    "eos_outside_the_vocabulary": ({"tokenizer__ggml__eos_token_id": (U32, 10**6)}, "not a token id below 259"),
    "more_layers_than_tensors": ({"llama__block_count": (U32, 3)}, "lacks tensor model.layers.2."),
    "feed_forward_disagrees_with_tensors": ({"llama__feed_forward_length": (U32, 256)},
                                            "has shape [128, 64] but the model's settings need [256, 64]"),
    "template_with_nested_ranges": (
        {"tokenizer__chat_template": (STR, "{% for i in range(10**6) %}{% for j in range(10**6) %}{{ i }}"
                                           "{% endfor %}{% endfor %}")}, "range was given 1000000"),
    "template_with_lipsum": ({"tokenizer__chat_template": (STR, "{{ lipsum(n=10**6) }}")}, "chat template"),
    "template_repeating_a_string": ({"tokenizer__chat_template": (STR, "{{ 'a' * 10**10 }}")},
                                    "repetition with * would make a value of 10000000000"),
    "template_looping_forever": (
        {"tokenizer__chat_template": (STR, "{% for c in 'a'*200000 %}{% for d in 'a'*200000 %}{% endfor %}"
                                           "{% endfor %}")}, "took longer than 2 s"),
    "template_that_does_not_compile": ({"tokenizer__chat_template": (STR, "{% for %}")}, "does not compile"),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_bad_metadata_is_one_line_before_compiling(tmp_path, case):
    changes, fragment = METADATA_CASES[case]
    assert_one_line_error(_pack(tmp_path, gguf_bytes(tiny_metadata(**changes), tiny_tensors())), fragment,
                          bound_s=BOUND_S)
