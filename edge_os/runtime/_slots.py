"""The engine's KV-cache sequences: admitting a request into a slot (new, forked from the prefix
cache, or continuing a finished one), making room by evicting kept prefixes, and releasing.

A mixin of ``Engine`` (``edge_os.runtime.engine``), which holds the state its methods use.
"""

from __future__ import annotations

import numpy as np

from edge_os.errors import InputError
from edge_os.runtime._sequence import Sequence
from edge_os.runtime.kv_pool import PAGE_TOKENS
from edge_os.runtime.prefix_cache import Match, common_prefix
from edge_os.runtime.request import GenerationRequest
from edge_os.runtime.sampler import Sampler
from edge_os.runtime.text_stream import TextStream


class Slots:
    """Admits requests into KV-cache sequences and gives their pages back."""

    def start(self, request: GenerationRequest, reuse: Sequence | None = None) -> Sequence:
        """Admit a request. ``reuse`` continues a finished sequence in its KV-cache slot, keeping the
        prefix it shares with the new prompt cached (the old Sequence object must not be used again).
        Otherwise a prompt that starts like a sequence in the prefix cache shares its pages and
        prefills only the rest."""
        prompt_ids = self.prompt_ids(request)
        if not prompt_ids:
            raise InputError("the prompt is empty")
        if len(prompt_ids) >= self.context_length:
            larger = (f"or load the model with a larger context (up to {self.manifest.context_length})"
                      if self.context_length < self.manifest.context_length else f"({self.name}'s maximum)")
            raise InputError(
                f"the prompt is {len(prompt_ids)} tokens but the context window holds {self.context_length}; "
                f"shorten it {larger}"
            )
        sampler = Sampler(request.sampling)
        stream = TextStream(self.tokenizer, request.stop)
        mask = self.grammars.mask(request.constraint) if request.constraint is not None else None
        if reuse is not None:
            common = common_prefix(reuse.cached_ids, prompt_ids[:-1])
            self.runner.truncate(reuse.seq_id, len(reuse.cached_ids) - common)
            return Sequence(reuse.seq_id, request, prompt_ids, sampler, stream, cached_ids=reuse.cached_ids[:common],
                            mask=mask)
        seq_id, shared, logits = self._new_sequence(prompt_ids)
        self._live.add(seq_id)
        return Sequence(seq_id, request, prompt_ids, sampler, stream, cached_ids=prompt_ids[:shared], mask=mask,
                        prompt_logits=logits)

    def _new_sequence(self, prompt: list[int]) -> tuple[int, int, np.ndarray | None]:
        """A KV-cache sequence for ``prompt``: its id, how many of the prompt's tokens it already
        holds (forked from, or taken over from, the prefix cache), and the logits after the prompt
        when the cache kept them with the whole prompt."""
        cache = self.prefix_cache
        match = cache.longest(prompt) if cache is not None else None
        if match is not None and match.logits is not None:
            # The prompt again, whole: decode on in the kept sequence's own pages, as its first run
            # did. A fork would attend over the shared pages as a level of their own and round
            # differently, so a seed would not give the same text twice.
            return self._take_over(match)
        spare = match.seq_id if match else None
        while cache and len(self._live) + len(cache) >= self.runner.cache_shape.max_batch_size:
            if (victim := cache.oldest(spare)) is None:
                break
            self._evict(victim)
        if match is None:
            seq_id = next(self._ids)
            self.runner.add_sequence(seq_id)
            return seq_id, 0, None
        if len(self._live) + len(cache) >= self.runner.cache_shape.max_batch_size:
            return self._take_over(match)  # no slot for a fork
        seq_id = next(self._ids)
        self._make_room(PAGE_TOKENS, spare)
        self.runner.fork(match.seq_id, seq_id, match.tokens)
        return seq_id, match.tokens, None  # a fork prefills at least the prompt's last token

    def _take_over(self, match: Match) -> tuple[int, int, np.ndarray | None]:
        """Hand a kept sequence to the request, cut back to the tokens it shares with its prompt."""
        held = self.prefix_cache.take(match.seq_id)
        self.runner.truncate(match.seq_id, len(held) - match.tokens)
        return match.seq_id, match.tokens, match.logits

    def _make_room(self, tokens: int, spare: int | None = None) -> None:
        """Evict kept sequences, least recently used first, until ``tokens`` fit in free pages."""
        while self.prefix_cache and self.runner.free_tokens() < tokens:
            if (victim := self.prefix_cache.oldest(spare)) is None:
                return
            self._evict(victim)

    def _evict(self, seq_id: int) -> None:
        self.prefix_cache.take(seq_id)
        self.runner.remove_sequence(seq_id)

    def clear_prefix_cache(self) -> None:
        """Free every kept sequence's pages now."""
        while self.prefix_cache:
            self._evict(self.prefix_cache.oldest())

    def release(self, seq: Sequence) -> None:
        """Give the sequence's KV pages back now: into the prefix cache (evictable, for requests
        that start the same way, with the logits after its prompt) when it holds a page or more
        that no kept sequence holds already, else freed."""
        if seq.seq_id is not None:
            self._live.discard(seq.seq_id)
            if self.prefix_cache is None:
                freed = [seq.seq_id]
            else:
                ends = {len(seq.prompt_ids): seq.prompt_logits} if seq.prompt_logits is not None else {}
                freed = self.prefix_cache.keep(seq.seq_id, seq.cached_ids, ends)
            for seq_id in freed:
                self.runner.remove_sequence(seq_id)
            seq.seq_id = None
            seq.finished = True

