"""One engine step: decode one token for every running sequence in one batch, with the next chunk
of new prompts in the same call, sample, and decide whether each goes on.

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


# The rows a step's call fills while streams run (their decode tokens, then prompt tokens): each
# row adds about a quarter to a half of a one-row step's matmuls (on Zen 5, 121 matmuls: 2.6 ms at
# 1 row, 4.0 at 4, 7.3 at 8; docs/performance.md), so a running stream's pace stays within ~3x of
# its pace alone while a prompt is fed in beside it.
MIXED_ROWS = 8


class Stepping:
    """Advances sequences together, one token per step."""

    def step(self, sequences: list[Sequence]) -> dict[Sequence, list[Event]]:
        """Decode one token for every running sequence in one batch. New sequences (in the order
        given) ride in the same call while some are running: each step carries the running
        streams' decode tokens and the next chunk of the new prompts, as many prompt tokens as
        fill ``MIXED_ROWS`` rows (one at least, ``prefill_chunk`` at most), so a long prompt takes
        many short steps and the running streams keep their pace; its first token comes with the
        step that carries its last chunk. With none running, ``prefill_chunk`` 0, or a package
        packed before mixed steps (no ``prefill_ragged``), new prompts are prefilled whole first,
        in calls of their own."""
        events: dict[Sequence, list[Event]] = {s: [] for s in sequences}
        running, new = [], []
        for seq in sequences:
            if seq.finished:
                continue
            if seq.request.deadline is not None and time.monotonic() > seq.request.deadline:
                self._finish(seq, FinishReason.DEADLINE, events[seq])
            elif seq.pending is None and len(seq.cached_ids) == len(seq.prompt_ids):
                # The prefix cache held the whole prompt and the logits after it: no call at all.
                self._prefilled(seq, [], seq.prompt_logits, events[seq])
            else:
                (new if seq.pending is None else running).append(seq)
        if not (running and self.prefill_chunk and self.runner.mixes_prompts):
            for seq in new:
                self._prefill(seq, events[seq])
            new = []
        if running:
            self._forward(running, self._chunks(new, len(running)), events)
        return events

    def _chunks(self, new: list[Sequence], rows: int) -> list[tuple[Sequence, list[int]]]:
        """The prompt tokens to carry beside ``rows`` decode tokens: the next ones of each new
        sequence in turn, up to what fills ``MIXED_ROWS`` rows (one at least, ``prefill_chunk`` at
        most)."""
        budget = max(1, min(self.prefill_chunk, MIXED_ROWS - rows))
        chunks = []
        for seq in new:
            if budget <= 0:
                break
            ids = seq.prompt_ids[len(seq.cached_ids):][:budget]
            budget -= len(ids)
            chunks.append((seq, ids))
        return chunks

    def _forward(self, running: list[Sequence], chunks: list[tuple[Sequence, list[int]]],
                 out: dict[Sequence, list[Event]]) -> None:
        """One call: a decode token for each running sequence and a prompt chunk for each new one."""
        self._make_room(PAGE_TOKENS * len(running) + sum(len(ids) + PAGE_TOKENS for _, ids in chunks))
        started = time.perf_counter()
        if chunks:
            logits = self.runner.forward([s.seq_id for s in running] + [s.seq_id for s, _ in chunks],
                                         [[s.pending] for s in running] + [ids for _, ids in chunks])
        else:
            logits = self.runner.decode([s.seq_id for s in running], [s.pending for s in running])
        elapsed = time.perf_counter() - started
        for row, seq in enumerate(running):
            seq.cached_ids.append(seq.pending)
            seq.decode_s += elapsed
            self._accept(seq, logits[row], out[seq])
        for row, (seq, ids) in enumerate(chunks, start=len(running)):
            seq.prefill_s += elapsed  # the steps that carried its prompt
            self._prefilled(seq, ids, logits[row], out[seq])

    def _prefill(self, seq: Sequence, out: list[Event]) -> None:
        """Prefill the rest of ``seq``'s prompt in a call of its own, and sample its first token."""
        ids = seq.prompt_ids[len(seq.cached_ids):]
        self._make_room(len(ids) + PAGE_TOKENS)
        started = time.perf_counter()
        logits = self.runner.prefill(seq.seq_id, ids)
        seq.prefill_s += time.perf_counter() - started
        self._prefilled(seq, ids, logits, out)

    def _prefilled(self, seq: Sequence, ids: list[int], logits: np.ndarray, out: list[Event]) -> None:
        """Book ``ids`` as cached; when the prompt is complete, sample its first token from ``logits``."""
        seq.prefilled_tokens += len(ids)
        seq.cached_ids.extend(ids)
        if len(seq.cached_ids) == len(seq.prompt_ids):
            if ids:  # computed now, not taken from the prefix cache: a copy to keep with the prompt
                seq.prompt_logits = np.array(logits, dtype=np.float32)
            self._accept(seq, logits, out)
            seq.first_token_at = time.perf_counter()

    def _accept(self, seq: Sequence, logits: np.ndarray, out: list[Event]) -> None:
        """Sample the next token and decide whether the sequence goes on."""
        allowed = seq.mask.allowed() if seq.mask is not None else None
        token = seq.sampler.sample(logits, seq.prompt_ids + seq.generated, allowed)
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

