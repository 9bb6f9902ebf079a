"""Runs a compiled model: TVM VM, parameters, paged KV cache, one forward at a time.

This is the only module that talks to TVM at run time. Token ids go in, float32 logits come out.
Every forward is bracketed by ``begin_forward``/``end_forward`` on the KV cache, and prompts
longer than the prefill chunk are fed in chunks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from typing import Iterable

import numpy as np
import tvm
from tvm import runtime
from tvm.runtime import vm as tvm_vm

# TVM's CPU attention kernels assume 16-token pages (other sizes fail at run time).
PAGE_SIZE = 16


@dataclass(frozen=True)
class CacheShape:
    max_batch_size: int = 8
    max_total_tokens: int = 4096  # over all sequences
    prefill_chunk: int = 256


def _shape_tuple(values):
    return runtime.ShapeTuple([int(v) for v in values])


class ModelRunner:
    """Owns the VM, the parameters on the device and the KV cache of one loaded model."""

    def __init__(self, library: Path, params: Iterable[np.ndarray], cache: CacheShape, threads: int | None = None):
        if threads:
            # TVM sizes its thread pool once, at the first parallel kernel of the process.
            os.environ["TVM_NUM_THREADS"] = str(threads)
        self.device = tvm.cpu()
        self.cache_shape = cache
        lib = runtime.load_module(str(library))
        self.vm = tvm_vm.VirtualMachine(lib, self.device)
        self.params = [tvm.runtime.tensor(p, self.device) for p in params]
        self._embed = self.vm["embed"]
        self._prefill = self.vm["prefill"]
        self._prefill_all = self.vm["prefill_all"]
        self._decode = self.vm["decode"]
        self.kv = self.vm["create_paged_kv_cache"](
            _shape_tuple([cache.max_batch_size]), _shape_tuple([cache.max_total_tokens]),
            _shape_tuple([cache.prefill_chunk]), _shape_tuple([PAGE_SIZE]), _shape_tuple([0]),
        )
        self._add = tvm.get_global_func("vm.builtin.kv_state_add_sequence")
        self._remove = tvm.get_global_func("vm.builtin.kv_state_remove_sequence")
        self._begin = tvm.get_global_func("vm.builtin.kv_state_begin_forward")
        self._end = tvm.get_global_func("vm.builtin.kv_state_end_forward")
        self._popn = tvm.get_global_func("vm.builtin.kv_state_popn")
        self._length = tvm.get_global_func("vm.builtin.attention_kv_cache_get_sequence_length")
        self._free_pages = tvm.get_global_func("vm.builtin.attention_kv_cache_get_num_available_pages")

    # --- sequences ---------------------------------------------------------------------------
    def add_sequence(self, seq_id: int) -> None:
        self._add(self.kv, int(seq_id))

    def remove_sequence(self, seq_id: int) -> None:
        self._remove(self.kv, int(seq_id))

    def sequence_length(self, seq_id: int) -> int:
        return int(self._length(self.kv, int(seq_id)))

    def truncate(self, seq_id: int, drop: int) -> None:
        """Forget the last ``drop`` tokens of a sequence (to re-feed them differently)."""
        if drop > 0:
            self._popn(self.kv, int(seq_id), int(drop))

    def free_tokens(self) -> int:
        return int(self._free_pages(self.kv)) * PAGE_SIZE

    # --- forwards ----------------------------------------------------------------------------
    def _embed_ids(self, token_ids: np.ndarray):
        ids = tvm.runtime.tensor(np.asarray(token_ids, dtype=np.int32), self.device)
        return self._embed(ids, self.params)

    def prefill(self, seq_id: int, token_ids: list[int], all_logits: bool = False) -> np.ndarray:
        """Append ``token_ids`` to a sequence; logits of the last token ``(vocab,)``, or of every
        token ``(len, vocab)`` when ``all_logits``."""
        chunk = self.cache_shape.prefill_chunk
        outputs = []
        for start in range(0, len(token_ids), chunk):
            piece = token_ids[start:start + chunk]
            embeds = self._embed_ids(np.asarray(piece))
            hidden = embeds.numpy().reshape(1, len(piece), -1)
            self._begin(self.kv, _shape_tuple([seq_id]), _shape_tuple([len(piece)]))
            fn = self._prefill_all if all_logits else self._prefill
            logits, _ = fn(tvm.runtime.tensor(hidden, self.device), self.kv, self.params)
            self._end(self.kv)
            outputs.append(logits.numpy()[0])
        if all_logits:
            return np.concatenate(outputs, axis=0)
        return outputs[-1][-1]

    def decode(self, seq_ids: list[int], token_ids: list[int]) -> np.ndarray:
        """One token for each sequence, batched: logits ``(batch, vocab)``."""
        embeds = self._embed_ids(np.asarray(token_ids)).numpy()
        embeds = embeds.reshape(len(seq_ids), 1, -1)
        self._begin(self.kv, _shape_tuple(seq_ids), _shape_tuple([1] * len(seq_ids)))
        logits, _ = self._decode(tvm.runtime.tensor(embeds, self.device), self.kv, self.params)
        self._end(self.kv)
        return logits.numpy()[:, 0, :]

