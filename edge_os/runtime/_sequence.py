"""A request in flight on an engine: its ids, what the KV cache holds for it, and its timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge_os.runtime.grammar import TokenMask
from edge_os.runtime.request import GenerationRequest
from edge_os.runtime.sampler import Sampler
from edge_os.runtime.text_stream import TextStream


@dataclass(eq=False)
class Sequence:
    """One request in flight: its ids, what the KV cache holds for it, and its timings."""

    seq_id: int
    request: GenerationRequest
    prompt_ids: list[int]
    sampler: Sampler
    stream: TextStream
    cached_ids: list[int] = field(default_factory=list)  # tokens whose K/V are in the cache
    generated: list[int] = field(default_factory=list)
    pending: int | None = None  # sampled, not yet fed to the model
    mask: TokenMask | None = None  # the output grammar's state, for constrained requests
    prompt_logits: np.ndarray | None = None  # after the prompt's last token: from the prefix cache, or its prefill
    finished: bool = False
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float = 0.0
    prefill_s: float = 0.0
    prefilled_tokens: int = 0
    decode_s: float = 0.0

    @property
    def kv_tokens(self) -> int:
        return len(self.cached_ids)
