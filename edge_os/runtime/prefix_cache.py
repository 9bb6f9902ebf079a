"""Which finished sequences an engine keeps in its KV cache so later requests can start from them.

Pure bookkeeping, no TVM: the engine keeps a released sequence's pages (its ``tokens``) instead of
freeing them, and a new request whose prompt starts with a kept prefix forks from it, so only the
rest of its prompt is prefilled. Entries live inside the engine's KV pool, which the scheduler
already counts in the model's resident bytes; they are never reserved for, and the engine evicts
them least recently used first whenever a running sequence needs their pages or their slot.

An entry also keeps the logits that followed the prompts it ended (``Ends``): a request whose whole
prompt is one of them starts from exactly the state its first run had, cache and first logits
alike, so a seed gives the same text again: the engine takes such a sequence over rather than
forking it (``Slots._new_sequence``). Recomputing the prompt's last token would run it through the
decode kernels where the prefill ones ran first, and a fork attends over the shared pages as a
level of its own (TVM's cascade attention); either rounds differently and can flip a sampled token.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from edge_os.runtime.kv_pool import PAGE_TOKENS

MAX_ENDS = 2  # prompt ends whose logits one entry keeps, the most recent (one vocabulary of floats each)

Ends = dict[int, np.ndarray]  # a prompt's length -> the logits after its last token


@dataclass(frozen=True)
class Match:
    """A kept sequence and how many leading tokens a prompt shares with it; ``logits`` when it holds
    the whole prompt and the logits that followed it (nothing is left to prefill)."""

    seq_id: int
    tokens: int
    logits: np.ndarray | None = field(default=None, compare=False)


@dataclass
class _Entry:
    tokens: tuple[int, ...]
    ends: Ends


class PrefixCache:
    """Kept sequences by id, least recently used first."""

    def __init__(self, min_tokens: int = PAGE_TOKENS):
        self.min_tokens = min_tokens  # a shorter match saves less than a page: not worth a fork
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self.hits = 0
        self.hit_tokens = 0  # prompt tokens not prefilled thanks to the cache

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, seq_id: int) -> bool:
        return seq_id in self._entries

    @property
    def tokens(self) -> int:
        """Tokens the kept sequences hold, shared pages counted once per sequence (an upper bound)."""
        return sum(len(e.tokens) for e in self._entries.values())

    def keep(self, seq_id: int, tokens: list[int], ends: Ends | None = None) -> list[int]:
        """Keep a released sequence holding ``tokens``, with the logits after the prompts it ended
        (``ends``), as the most recently used entry. Returns the sequences whose pages the caller
        frees now: this one when it is shorter than ``min_tokens`` or an entry already holds its
        tokens (that entry takes its ends), else the entries it makes redundant (it takes theirs)."""
        tokens, ends = tuple(tokens), dict(ends or {})
        if len(tokens) < self.min_tokens:
            return [seq_id]
        for other, entry in self._entries.items():
            if other != seq_id and entry.tokens[:len(tokens)] == tokens:
                entry.ends = _recent(entry.ends | ends)
                return [seq_id]
        redundant = [s for s, e in self._entries.items() if s != seq_id and tokens[:len(e.tokens)] == e.tokens]
        for other in redundant:
            ends = self._entries.pop(other).ends | ends
        previous = self._entries.pop(seq_id, None)  # kept again after a longer life: replaced
        self._entries[seq_id] = _Entry(tokens, _recent((previous.ends if previous else {}) | ends))
        return redundant

    def longest(self, prompt: list[int]) -> Match | None:
        """The entry sharing the longest prefix with ``prompt`` (at least ``min_tokens``), now the
        most recently used; None when none shares enough. The match leaves the prompt's last token
        to compute unless the entry kept the logits that followed this very prompt."""
        best: Match | None = None
        for seq_id, entry in self._entries.items():
            shared = common_prefix(entry.tokens, prompt)
            logits = entry.ends.get(len(prompt)) if shared == len(prompt) else None
            if logits is None:
                shared = min(shared, len(prompt) - 1)
            if shared >= self.min_tokens and (best is None or shared > best.tokens):
                best = Match(seq_id, shared, logits)
        if best is not None:
            self._entries.move_to_end(best.seq_id)
            self.hits += 1
            self.hit_tokens += best.tokens
        return best

    def take(self, seq_id: int) -> tuple[int, ...]:
        """Remove an entry (its sequence is handed to a request); returns its tokens."""
        return self._entries.pop(seq_id).tokens

    def oldest(self, spare: int | None = None) -> int | None:
        """The least recently used entry other than ``spare``; None when there is none."""
        return next((s for s in self._entries if s != spare), None)

    def status(self) -> dict:
        return {"sequences": len(self), "tokens": self.tokens, "hits": self.hits, "hit_tokens": self.hit_tokens,
                "logits_bytes": sum(a.nbytes for e in self._entries.values() for a in e.ends.values())}


def _recent(ends: Ends) -> Ends:
    """The ``MAX_ENDS`` most recently added of ``ends``."""
    return dict(list(ends.items())[-MAX_ENDS:])


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter one
        if x != y:
            break
        n += 1
    return n
