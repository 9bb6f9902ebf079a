"""One engine step: prefill new sequences (a chunk at a time beside running streams), decode one
token for every running sequence in one batch, sample, and decide whether each goes on.

A mixin of ``Engine`` (``edge_os.runtime.engine``), which holds the state its methods use.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from edge_os.runtime._sequence import Sequence
from edge_os.runtime.kv_pool import PAGE_TOKENS
from edge_os.runtime.request import Event, Finished, FinishReason, TextDelta, Timings, Usage

log = logging.getLogger("edge_os.runtime.engine")  # one logger for the engine, as before the split


class Stepping:
    """Advances sequences together, one token per step."""

    def step(self, sequences: list[Sequence]) -> dict[Sequence, list[Event]]:
        """Prefill new sequences (in the order given), then decode one token for all running ones
        in one batch. While some are running, a step prefills about as many prompt tokens as one
        of their decode steps costs (``_chunk_budget``: a page at least, ``prefill_chunk`` at most),
        so a long prompt takes several steps and the running streams keep their pace; its first
        token comes with the step that prefills its last chunk. With none running, new prompts
        are prefilled whole (nobody waits for them)."""
        events: dict[Sequence, list[Event]] = {s: [] for s in sequences}
        running, new = [], []
        for seq in sequences:
            if seq.finished:
                continue
            if seq.request.deadline is not None and time.monotonic() > seq.request.deadline:
                self._finish(seq, FinishReason.DEADLINE, events[seq])
            else:
                (new if seq.pending is None else running).append(seq)
        budget = self._chunk_budget() if running and self.prefill_chunk else None
        for seq in new:
            if budget is None or budget > 0:
                budget = self._prefill(seq, events[seq], budget)
        if running:
            self._make_room(PAGE_TOKENS * len(running))  # at most a new page each
            started = time.perf_counter()
            logits = self.runner.decode([s.seq_id for s in running], [s.pending for s in running])
            elapsed = time.perf_counter() - started
            self._decode_step_s = _average(self._decode_step_s, elapsed)
            for row, seq in enumerate(running):
                seq.cached_ids.append(seq.pending)
                seq.decode_s += elapsed
                self._accept(seq, logits[row], events[seq])
        return events

    def _chunk_budget(self) -> int:
        """Prompt tokens to prefill beside the running streams in this step: about what one of
        their decode steps costs (so their inter-token time at most doubles), in whole pages,
        at least a page and at most ``prefill_chunk``."""
        if not (self._decode_step_s and self._prefill_tok_s):
            return self.prefill_chunk
        paced = int(self._decode_step_s * self._prefill_tok_s) // PAGE_TOKENS * PAGE_TOKENS
        return max(PAGE_TOKENS, min(self.prefill_chunk, paced))

    def _prefill(self, seq: Sequence, out: list[Event], budget: int | None) -> int | None:
        """Prefill the next ``budget`` prompt tokens of ``seq`` (all: None); returns what is left."""
        new_ids = seq.prompt_ids[len(seq.cached_ids):]
        if budget is not None:
            new_ids = new_ids[:budget]
            budget -= len(new_ids)
        self._make_room(len(new_ids) + PAGE_TOKENS)
        started = time.perf_counter()
        logits = self.runner.prefill(seq.seq_id, new_ids)
        took = time.perf_counter() - started
        seq.prefill_s += took
        if len(new_ids) >= PAGE_TOKENS and took > 0:
            self._prefill_tok_s = _average(self._prefill_tok_s, len(new_ids) / took)
        seq.prefilled_tokens += len(new_ids)
        seq.cached_ids.extend(new_ids)
        if len(seq.cached_ids) == len(seq.prompt_ids):
            self._accept(seq, logits, out)
            seq.first_token_at = time.perf_counter()
        return budget

    def _accept(self, seq: Sequence, logits: np.ndarray, out: list[Event]) -> None:
        """Sample the next token and decide whether the sequence goes on."""
        seen = np.asarray(seq.prompt_ids + seq.generated, dtype=np.int64)
        allowed = seq.mask.allowed() if seq.mask is not None else None
        token = seq.sampler.sample(logits, seen, allowed)
        if seq.mask is not None and not seq.mask.accept(token):
            log.warning("request %s: the output grammar refused token %d; ending it", seq.request.request_id, token)
            self._finish(seq, FinishReason.STOP, out)
            return
        if token in self.stop_ids and (not seq.request.ignore_eos or seq.mask is not None):
            self._finish(seq, FinishReason.STOP, out)
            return
        seq.generated.append(token)
        seq.pending = token
        text = seq.stream.push(token)
        out.append(TextDelta(text, (token,)))
        if seq.stream.stopped or (seq.mask is not None and seq.mask.terminated):
            self._finish(seq, FinishReason.STOP, out)
        elif len(seq.generated) >= seq.request.max_tokens or len(seq.cached_ids) + 1 >= self.context_length:
            self._finish(seq, FinishReason.LENGTH, out)

    def _finish(self, seq: Sequence, reason: FinishReason, out: list[Event]) -> None:
        """Emit text held back for a stop string that never came, then the Finished event."""
        tail = seq.stream.flush()
        if tail:
            out.append(TextDelta(tail, ()))
        seq.finished = True
        now = time.perf_counter()
        first = seq.first_token_at or now
        decoded = max(len(seq.generated) - 1, 0)
        timings = Timings(
            ttft_s=first - seq.started,
            prefill_tok_s=seq.prefilled_tokens / seq.prefill_s if seq.prefill_s else 0.0,
            decode_tok_s=decoded / seq.decode_s if seq.decode_s else 0.0,
        )
        out.append(Finished(seq.stream.text, tuple(seq.generated), reason,
                            Usage(len(seq.prompt_ids), len(seq.generated)), timings))


def _average(previous: float, value: float, weight: float = 0.2) -> float:
    """Exponential moving average (the first value stands alone)."""
    return value if not previous else previous + weight * (value - previous)
