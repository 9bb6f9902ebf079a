"""Choosing the next token from logits: repetition penalty, temperature, top-k, top-p, seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_os.runtime.request import SamplingParams


class Sampler:
    """One per sequence: it owns the random generator so a seed gives the same text every time."""

    def __init__(self, params: SamplingParams):
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def apply_penalty(self, logits: np.ndarray, seen: Sequence[int] | np.ndarray) -> np.ndarray:
        """llama.cpp's rule: positive logits of seen tokens are divided, negative multiplied.
        ``seen`` becomes an array only when there is a penalty (a long prompt's ids cost ~20 us)."""
        penalty = self.params.repetition_penalty
        if penalty == 1.0 or len(seen) == 0:
            return logits
        logits = logits.copy()
        ids = np.unique(np.asarray(seen, dtype=np.int64))
        vals = logits[ids]
        logits[ids] = np.where(vals > 0, vals / penalty, vals * penalty)
        return logits

    def sample(self, logits: np.ndarray, seen: Sequence[int] | np.ndarray, allowed: np.ndarray | None = None) -> int:
        """The next token; ``allowed`` (booleans over the vocabulary) masks out the rest."""
        logits = self.apply_penalty(np.asarray(logits, dtype=np.float32), seen)
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf).astype(np.float32)
        p = self.params
        if p.greedy:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / p.temperature
        candidates = np.arange(scaled.size)
        if 0 < p.top_k < scaled.size:
            candidates = np.argpartition(-scaled, p.top_k - 1)[: p.top_k]
        order = candidates[np.argsort(-scaled[candidates], kind="stable")]
        probs = np.exp(scaled[order] - scaled[order[0]])
        probs /= probs.sum()
        if p.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p) + 1)
            order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
        return int(order[self.rng.choice(order.size, p=probs)])
