"""Which finished sequences an engine keeps in its KV cache so later requests can start from them.

Pure bookkeeping, no TVM: the engine keeps a released sequence's pages (its ``tokens``) instead of
freeing them, and a new request whose prompt starts with a kept prefix forks from it, so only the
rest of its prompt is prefilled. Entries live inside the engine's KV pool, which the scheduler
already counts in the model's resident bytes; they are never reserved for, and the engine evicts
them least recently used first whenever a running sequence needs their pages or their slot.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edge_os.runtime.kv_pool import PAGE_TOKENS


@dataclass(frozen=True)
class Match:
    """A kept sequence and how many leading tokens a prompt shares with it."""

    seq_id: int
    tokens: int


class PrefixCache:
    """Kept sequences by id, least recently used first."""

    def __init__(self, min_tokens: int = PAGE_TOKENS):
        self.min_tokens = min_tokens  # a shorter match saves less than a page: not worth a fork
        self._entries: OrderedDict[int, tuple[int, ...]] = OrderedDict()
        self.hits = 0
        self.hit_tokens = 0  # prompt tokens not prefilled thanks to the cache

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, seq_id: int) -> bool:
        return seq_id in self._entries

    @property
    def tokens(self) -> int:
        """Tokens the kept sequences hold, shared pages counted once per sequence (an upper bound)."""
        return sum(len(t) for t in self._entries.values())

    def keep(self, seq_id: int, tokens: list[int]) -> None:
        """Keep a released sequence holding ``tokens`` (the most recently used entry)."""
        self._entries[seq_id] = tuple(tokens)
        self._entries.move_to_end(seq_id)

    def longest(self, prompt: list[int]) -> Match | None:
        """The entry sharing the longest prefix with ``prompt`` (at least ``min_tokens``), now the
        most recently used; None when none shares enough."""
        best: Match | None = None
        for seq_id, tokens in self._entries.items():
            shared = common_prefix(tokens, prompt)
            if shared >= self.min_tokens and (best is None or shared > best.tokens):
                best = Match(seq_id, shared)
        if best is not None:
            self._entries.move_to_end(best.seq_id)
            self.hits += 1
            self.hit_tokens += best.tokens
        return best

    def covers(self, tokens: list[int]) -> bool:
        """Whether an entry already holds ``tokens`` as its prefix (keeping them again adds nothing)."""
        n = len(tokens)
        return any(len(t) >= n and t[:n] == tuple(tokens) for t in self._entries.values())

    def covered_by(self, tokens: list[int]) -> list[int]:
        """Entries that are a prefix of ``tokens`` (a sequence holding ``tokens`` makes them redundant)."""
        return [s for s, t in self._entries.items() if len(t) <= len(tokens) and tuple(tokens[:len(t)]) == t]

    def take(self, seq_id: int) -> tuple[int, ...]:
        """Remove an entry (its sequence is handed to a request); returns its tokens."""
        return self._entries.pop(seq_id)

    def oldest(self, spare: int | None = None) -> int | None:
        """The least recently used entry other than ``spare``; None when there is none."""
        return next((s for s in self._entries if s != spare), None)

    def status(self) -> dict:
        return {"sequences": len(self), "tokens": self.tokens, "hits": self.hits, "hit_tokens": self.hit_tokens}


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter one
        if x != y:
            break
        n += 1
    return n
