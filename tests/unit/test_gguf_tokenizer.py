"""Tokenizers rebuilt from a GGUF's own vocabulary (both vocabulary kinds), via real GGUF files."""

from __future__ import annotations

import gguf
import pytest
from tokenizers import Tokenizer

from edge_os.convert.gguf_tokenizer import tokenizer_json_from_gguf
from edge_os.errors import ModelSourceError


def write_vocab(path, model, tokens, types, scores=None, merges=None, pre=None):
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model(model)
    if pre:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if scores is not None:
        writer.add_token_scores(scores)
    if merges is not None:
        writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return gguf.GGUFReader(str(path))


def test_sentencepiece_vocabulary_merges_by_score(tmp_path):
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    words = ["▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "▁he", "llo", "▁hello", "▁w", "or", "▁wor", "ld",
             "▁world"]
    tokens = ["<unk>", "<s>", "</s>"] + byte_tokens + words
    types = [2, 3, 3] + [6] * 256 + [1] * len(words)
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(words))]
    reader = write_vocab(tmp_path / "spm.gguf", "llama", tokens, types, scores=scores)
    doc, bos, eos, add_bos = tokenizer_json_from_gguf(reader, tmp_path / "spm.gguf")
    tok = Tokenizer.from_str(doc)
    enc = tok.encode("hello world", add_special_tokens=False)
    assert enc.tokens == ["▁hello", "▁world"]
    assert tok.decode(enc.ids) == "hello world"
    # a character outside the vocabulary falls back to its UTF-8 bytes
    assert tok.encode("é", add_special_tokens=False).tokens == ["▁", "<0xC3>", "<0xA9>"]
    assert (bos, eos, add_bos) == (1, [2], True)


def test_gpt2_vocabulary_with_smollm_digit_splitting(tmp_path):
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + alphabet + ["12", "Ġa", "Ġab"]
    merges = ["1 2", "Ġ a", "Ġa b"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    reader = write_vocab(tmp_path / "bpe.gguf", "gpt2", tokens, types, merges=merges, pre="smollm")
    doc, *_ = tokenizer_json_from_gguf(reader, tmp_path / "bpe.gguf")
    tok = Tokenizer.from_str(doc)
    # smollm splits digits one by one before BPE, so the "12" merge never applies
    assert tok.encode("12 ab", add_special_tokens=False).tokens == ["1", "2", "Ġab"]
    assert tok.encode("<|im_start|>x", add_special_tokens=False).ids[0] == 1


def test_unknown_vocabulary_kind_is_refused(tmp_path):
    reader = write_vocab(tmp_path / "x.gguf", "rwkv", ["a", "b"], [1, 1])
    with pytest.raises(ModelSourceError, match="tokenizer type 'rwkv'"):
        tokenizer_json_from_gguf(reader, tmp_path / "x.gguf")
