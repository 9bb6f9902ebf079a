"""Structured output: JSON (any object, or one schema) as a token mask, with ``xgrammar``.

``Grammars(tokenizer, vocab_size, stop_ids)`` belongs to one engine: it builds xgrammar's
tokenizer description once and compiles each distinct constraint once (cached). A
``TokenMask`` follows one sequence: ``allowed()`` is the boolean mask over the vocabulary for the
next token, ``accept(token)`` advances it. xgrammar (and the torch it imports) is loaded only
when the first constrained request arrives.
"""

from __future__ import annotations

import json
import threading

import numpy as np
from tokenizers import Tokenizer

from edge_os.errors import InputError
from edge_os.runtime.request import OutputConstraint


def load_xgrammar():
    """Import xgrammar (about 12 s and 340 MiB the first time, for the torch it imports)."""
    try:
        import xgrammar
    except ImportError:
        raise InputError("structured output needs xgrammar: pip install 'edge-os[structured]'") from None
    return xgrammar


class TokenMask:
    """The grammar state of one sequence."""

    def __init__(self, matcher, vocab_size: int) -> None:
        import xgrammar

        self._matcher = matcher
        self._vocab_size = vocab_size
        self._bitmask = np.full(xgrammar.get_bitmask_shape(1, vocab_size), -1, dtype=np.int32)

    def allowed(self) -> np.ndarray:
        """Boolean mask of the tokens the grammar allows next."""
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")
        return bits[: self._vocab_size].astype(bool)

    def accept(self, token: int) -> bool:
        """Advance past ``token``; False if the grammar does not allow it (it was masked out)."""
        return self._matcher.accept_token(token)

    @property
    def terminated(self) -> bool:
        return self._matcher.is_terminated()


class Grammars:
    """Compiles constraints for one engine's tokenizer."""

    def __init__(self, tokenizer: Tokenizer, vocab_size: int, stop_ids: list[int]) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._stop_ids = stop_ids
        self._compiler = None
        self._lock = threading.Lock()

    def mask(self, constraint: OutputConstraint) -> TokenMask:
        """A fresh mask for one sequence; ``InputError`` names what xgrammar cannot handle."""
        xgrammar = load_xgrammar()

        compiled = self._compile(constraint)
        return TokenMask(xgrammar.GrammarMatcher(compiled), self._vocab_size)

    def _compile(self, constraint: OutputConstraint):
        with self._lock:
            if self._compiler is None:
                self._compiler = _compiler(self._tokenizer, self._vocab_size, tuple(self._stop_ids))
            return _compile_cached(self._compiler, constraint)


def _compiler(tokenizer: Tokenizer, vocab_size: int, stop_ids: tuple[int, ...]):
    import xgrammar

    vocab = [tokenizer.id_to_token(i) or "" for i in range(vocab_size)]
    info = xgrammar.TokenizerInfo(vocab, vocab_type=_vocab_type(tokenizer), vocab_size=vocab_size,
                                  stop_token_ids=list(stop_ids), add_prefix_space=False)
    return xgrammar.GrammarCompiler(info, cache_enabled=True)


def _vocab_type(tokenizer: Tokenizer):
    """BYTE_LEVEL (GPT-2 style, e.g. SmolLM2, Qwen), BYTE_FALLBACK (<0x..> pieces, e.g. Llama 2) or RAW."""
    import xgrammar

    decoder = json.loads(tokenizer.to_str()).get("decoder") or {}
    kinds = {decoder.get("type")} | {d.get("type") for d in decoder.get("decoders") or []}
    if "ByteLevel" in kinds:
        return xgrammar.VocabType.BYTE_LEVEL
    if "ByteFallback" in kinds:
        return xgrammar.VocabType.BYTE_FALLBACK
    return xgrammar.VocabType.RAW


# xgrammar's characters of length-bounded strings admit raw control characters, which JSON
# forbids (RFC 8259 section 7); its unbounded strings already exclude them. Both admit the UTF-8
# bytes of surrogate code points (ED A0..BF xx), which are not UTF-8 at all: a byte-level model
# could write them and the text would decode to replacement characters.
_LOOSE_CHAR = r'[^\"\\\r\n]'
_STRICT_CHAR = r'[^\0-\x1f\"\\\r\n]'
_JSON_CHAR = r'[^\0-\x1f\"\\\r\n\ud800-\udfff]'


def _compile_cached(compiler, constraint: OutputConstraint):
    """Compact JSON (no free whitespace: a model cannot loop on blanks); xgrammar caches what it
    compiled."""
    import xgrammar

    schema = constraint.schema if constraint.kind == "json_schema" else '{"type": "object"}'
    try:
        if constraint.kind == "structural_tag":
            return compiler.compile_structural_tag(constraint.schema)
        text = str(xgrammar.Grammar.from_json_schema(schema, any_whitespace=False, strict_mode=True))
        text = text.replace(_LOOSE_CHAR, _JSON_CHAR).replace(_STRICT_CHAR, _JSON_CHAR)
        return compiler.compile_grammar(xgrammar.Grammar.from_ebnf(text))
    except (RuntimeError, ValueError, TypeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the JSON schema cannot be used for constrained output: {message}") from None
