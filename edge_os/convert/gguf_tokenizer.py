"""Build a Hugging Face ``tokenizers`` tokenizer from a GGUF file's own vocabulary.

Two vocabularies occur in the models we import:
- ``gpt2``: byte-level BPE with merges (SmolLM, Qwen2, Llama 3). The pre-tokenizer follows the
  GGUF's ``tokenizer.ggml.pre`` (e.g. ``smollm`` splits digits one by one first).
- ``llama``: SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral); merges are
  not stored, so they are rebuilt from the token scores as SentencePiece would rank them.
"""

from __future__ import annotations

from pathlib import Path

from edge_os.convert.source import END_OF_TURN_TOKENS
from edge_os.errors import ModelSourceError, printable

TOKEN_TYPE_CONTROL = 3
MAX_VOCAB = 1 << 19  # the largest vocabularies in use are 262k tokens
MAX_TOKEN_CHARS = 1024
TOKEN_TYPE_USER_DEFINED = 4

# GPT-2's split pattern and the Llama 3 / Qwen2 one, as llama.cpp applies them per `pre` name.
_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def _pre_tokenizer(pre: str) -> dict:
    bytelevel = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    if pre in ("smollm", "gpt-2", "default", "starcoder", "refact", "gpt2"):
        steps = []
        if pre in ("smollm", "starcoder", "refact"):
            steps.append({"type": "Digits", "individual_digits": True})
        steps.append({"type": "Split", "pattern": {"Regex": _GPT2_SPLIT}, "behavior": "Isolated", "invert": False})
        steps.append(bytelevel)
        return {"type": "Sequence", "pretokenizers": steps}
    pattern = {"qwen2": _QWEN2_SPLIT}.get(pre, _LLAMA3_SPLIT)
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        bytelevel,
    ]}


def _added_tokens(tokens: list[str], types: list[int]) -> list[dict]:
    return [
        {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": types[i] == TOKEN_TYPE_CONTROL}
        for i, tok in enumerate(tokens)
        if types and types[i] in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
    ]


def _gpt2_tokenizer(tokens, types, merges, pre) -> dict:
    return {
        "version": "1.0",
        "added_tokens": _added_tokens(tokens, types),
        "normalizer": None,
        "pre_tokenizer": _pre_tokenizer(pre),
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }


def _spm_merges(tokens: list[str], scores: list[float]) -> list[list[str]]:
    """Merges ranked by the score of the token they produce (SentencePiece BPE semantics)."""
    vocab = {tok: i for i, tok in enumerate(tokens)}
    found = []
    for tok, idx in vocab.items():
        for cut in range(1, len(tok)):
            left, right = tok[:cut], tok[cut:]
            if left in vocab and right in vocab:
                found.append((-scores[idx], vocab[left], vocab[right], left, right))
    found.sort()
    return [[left, right] for *_, left, right in found]


def _spm_tokenizer(tokens, types, scores, add_space_prefix: bool) -> dict:
    unk = next((i for i, t in enumerate(types) if t == 2), 0) if types else 0
    return {
        "version": "1.0",
        "added_tokens": _added_tokens(tokens, types),
        "normalizer": {"type": "Sequence", "normalizers": (
            [{"type": "Prepend", "prepend": "▁"}] if add_space_prefix else []
        ) + [{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
        ] + ([{"type": "Strip", "content": " ", "start": 1, "stop": 0}] if add_space_prefix else [])},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": tokens[unk], "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "merges": _spm_merges(tokens, scores),
        },
    }



def tokenizer_json_from_gguf(reader, path: Path) -> tuple[str, int | None, list[int], bool]:
    """``(tokenizer JSON, bos id, end-of-generation ids, add BOS?)`` for a GGUF reader."""
    import json

    kind = _field(reader, "tokenizer.ggml.model")
    tokens = list_of(reader, path, "tokenizer.ggml.tokens", str)
    types = list_of(reader, path, "tokenizer.ggml.token_type", int)
    if not tokens:
        raise ModelSourceError(f"{path} has no tokenizer vocabulary; it cannot be packed without one")
    if len(tokens) > MAX_VOCAB:
        raise ModelSourceError(f"{path}: a vocabulary of {len(tokens)} tokens is more than edge-os packs ({MAX_VOCAB})")
    longest = max(tokens, key=len)
    if len(longest) > MAX_TOKEN_CHARS:
        raise ModelSourceError(f"{path}: token {printable(repr(longest), 20)} is {len(longest)} characters long "
                               f"(at most {MAX_TOKEN_CHARS}); the file is corrupt")
    if types and len(types) != len(tokens):
        raise ModelSourceError(f"{path}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} "
                               "tokens; the file is corrupt")
    if kind == "gpt2":
        merges = list_of(reader, path, "tokenizer.ggml.merges", str)
        bad = next((m for m in merges if len(m.split(" ")) != 2 or "" in m.split(" ")), None)
        if bad is not None:
            raise ModelSourceError(f"{path}: merge {printable(repr(bad), 40)} is not two tokens separated by one "
                                   "space; the file is corrupt")
        doc = _gpt2_tokenizer(tokens, types, merges, _text(_field(reader, "tokenizer.ggml.pre", "default")))
    elif kind == "llama":
        scores = list_of(reader, path, "tokenizer.ggml.scores", float) or [0.0] * len(tokens)
        if len(scores) != len(tokens):
            raise ModelSourceError(f"{path}: tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} "
                                   "tokens; the file is corrupt")
        doc = _spm_tokenizer(tokens, types, scores, bool(_field(reader, "tokenizer.ggml.add_space_prefix", True)))
    else:
        raise ModelSourceError(f"{path}: tokenizer type {printable(repr(kind), 40)} is not supported; "
                               "supported: gpt2, llama")
    bos = _token_id(reader, path, "tokenizer.ggml.bos_token_id", len(tokens))
    eos = _token_id(reader, path, "tokenizer.ggml.eos_token_id", len(tokens))
    ends = [] if eos is None else [int(eos)]
    control = {tok: i for i, tok in enumerate(tokens) if types and types[i] == TOKEN_TYPE_CONTROL}
    ends += [control[t] for t in END_OF_TURN_TOKENS if t in control and control[t] not in ends]
    add_bos = bool(_field(reader, "tokenizer.ggml.add_bos_token", kind == "llama"))
    text = json.dumps(doc)
    _check_loads(text, path)
    return text, (None if bos is None else int(bos)), ends, add_bos


def _text(value) -> str:
    return value if isinstance(value, str) else "default"


def list_of(reader, path: Path, key: str, kind: type) -> list:
    """A metadata array whose elements are all ``kind`` (empty when absent)."""
    values = _field(reader, key)
    if values is None:
        return []
    ok = isinstance(values, list) and all(
        isinstance(v, kind) and not isinstance(v, bool) or kind is float and isinstance(v, int) for v in values)
    if not ok:
        raise ModelSourceError(f"{path}: {key} is not a list of {kind.__name__} values; the file is corrupt")
    return values


def _token_id(reader, path: Path, key: str, vocab: int) -> int | None:
    value = _field(reader, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab:
        raise ModelSourceError(f"{path}: {key} is {printable(repr(value), 40)}, not a token id below {vocab}; "
                               "the file is corrupt")
    return value


def _check_loads(tokenizer_json: str, path: Path) -> None:
    """Build the tokenizer once at pack time, so a malformed vocabulary fails here, not at every load."""
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_str(tokenizer_json)
    except Exception as exc:  # the tokenizers library raises bare Exceptions
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ModelSourceError(f"{path}: its tokenizer cannot be built ({first}); the file is corrupt") from None
