"""Perplexity of a text: consecutive windows, every token but each window's first is scored."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_os.errors import InputError


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    tokens: int  # tokens scored
    windows: int


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def perplexity(engine, text: str, window: int = 512,
               on_window: Callable[[int, int], None] | None = None) -> PerplexityResult:
    if window < 2:
        raise InputError(f"--ctx must be at least 2 tokens (got {window})")
    if window > engine.context_length:
        raise InputError(f"--ctx {window} is larger than the loaded context ({engine.context_length}); "
                         "raise the engine context or use a smaller window")
    ids = engine.tokenizer.encode(text, add_special_tokens=False).ids
    windows = [ids[i:i + window] for i in range(0, len(ids), window)]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise InputError("the text has fewer than 2 tokens; nothing to score")
    total_nll, scored = 0.0, 0
    runner = engine.runner
    for index, w in enumerate(windows):
        seq_id = -1 - index  # never collides with the engine's own sequence ids (>= 0)
        runner.add_sequence(seq_id)
        try:
            logits = runner.prefill(seq_id, w, all_logits=True)  # (len, vocab)
        finally:
            runner.remove_sequence(seq_id)
        logp = log_softmax(logits[:-1].astype(np.float64))
        total_nll -= float(logp[np.arange(len(w) - 1), w[1:]].sum())
        scored += len(w) - 1
        if on_window:
            on_window(index + 1, len(windows))
    return PerplexityResult(math.exp(total_nll / scored), scored, len(windows))
