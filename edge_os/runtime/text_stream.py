"""Turns generated token ids into text deltas, holding back what a stop string might still match.

Decoding is incremental: only the ids since the last emitted boundary are decoded each step, and
text ending in an incomplete UTF-8 sequence (U+FFFD) waits for the next token.
"""

from __future__ import annotations

from tokenizers import Tokenizer


class TextStream:
    def __init__(self, tokenizer: Tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self._prefix = 0  # ids before this are fully emitted
        self._read = 0
        self.text = ""  # all text decoded so far (including held back)
        self.emitted = 0  # characters of self.text already given out
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add a token; return the text that can be shown now ('' while held back or after a stop)."""
        if self.stopped:
            return ""
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self._prefix:self._read])
        new_text = self._decode(self.ids[self._prefix:])
        if new_text.endswith("\ufffd"):
            return ""
        self.text += new_text[len(prefix_text):]
        self._prefix, self._read = self._read, len(self.ids)
        return self._release()

    def _release(self) -> str:
        for s in self.stop:
            at = self.text.find(s, max(0, self.emitted - len(s)))
            if at >= 0:
                self.text = self.text[:at]
                self.stopped = True
                return self._take(len(self.text))
        hold = max((self._partial_stop_len(s) for s in self.stop), default=0)
        return self._take(len(self.text) - hold)

    def _partial_stop_len(self, stop: str) -> int:
        """Length of the longest tail of the text that is a proper prefix of ``stop``."""
        for n in range(min(len(stop) - 1, len(self.text)), 0, -1):
            if self.text.endswith(stop[:n]):
                return n
        return 0

    def _take(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        out = self.text[self.emitted:upto]
        self.emitted = upto
        return out

    def flush(self) -> str:
        """At the end: whatever was held back for a stop string that never came."""
        if self.stopped:
            return ""
        return self._take(len(self.text))
