"""Finding a tokenizer's control-token strings (``<|im_start|>``, ``<start_of_turn>``) in text.

One regular expression with every token as an alternative is slow to build when a vocabulary
has thousands of them (Gemma 3 has 6,249 ``<unusedN>`` and other control tokens: ~1 s to compile
on a 2 GHz core, at every model load). This finder needs no compilation: it looks for the
characters control tokens start with, then tries the tokens' lengths there, longest first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator


class ControlTokens:
    """The control-token strings of one tokenizer; matches are leftmost, longest first, and do not overlap."""

    def __init__(self, tokens: Iterable[str]):
        self._tokens = frozenset(t for t in tokens if t)
        self._lengths = sorted({len(t) for t in self._tokens}, reverse=True)
        starts = sorted({t[0] for t in self._tokens})
        self._start = re.compile("[" + "".join(map(re.escape, starts)) + "]") if starts else None

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of every control token in ``text``."""
        if self._start is None:
            return
        at = 0
        while (candidate := self._start.search(text, at)) is not None:
            at = candidate.start()
            length = next((n for n in self._lengths if at + n <= len(text) and text[at:at + n] in self._tokens), 0)
            if length:
                yield at, at + length
                at += length
            else:
                at += 1

    def first(self, text: str) -> str | None:
        """The first control token in ``text``, or None."""
        for start, end in self.spans(text):
            return text[start:end]
        return None
