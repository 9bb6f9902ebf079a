"""Runs a compiled model: TVM VM, parameters, paged KV cache, one forward at a time.

This is the only module that talks to TVM at run time. Token ids go in, float32 logits come out.
Every forward is bracketed by ``begin_forward``/``end_forward`` on the KV cache, prompts
longer than the prefill chunk are fed in chunks, and ``forward`` appends to several sequences in
one call (decode tokens and a prompt's chunk together).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_os.errors import TargetError
from edge_os.package.reader import aligned_empty
from edge_os.runtime.ffi import tvm_ffi
from edge_os.runtime.kv_pool import PAGE_TOKENS
from edge_os.runtime.tvm_runtime import ensure_loaded, shape, to_numpy, to_tensor

log = logging.getLogger(__name__)

_POOLED_ALLOCATOR = 2  # the VM's pooled allocator
_BIG_CORES = 1  # TVM's thread-pool affinity mode "big cores" (all cores on a uniform CPU)
# The device a package runs on, by the kind of its TVM target (manifest ``target.tvm_target``).
DEVICES = {"llvm": "cpu", "cuda": "cuda"}


def package_device(tvm_target: dict) -> str:
    """``cpu`` or ``cuda``: where a package with this (resolved) TVM target runs."""
    kind = tvm_target.get("kind", "llvm")
    if kind not in DEVICES:
        raise TargetError(f"packages for {kind} devices cannot be run by this edge-os; pack for a cpu or cuda target")
    return DEVICES[kind]


@dataclass(frozen=True)
class CacheShape:
    max_batch_size: int = 8
    max_total_tokens: int = 4096  # over all sequences
    prefill_chunk: int = 256


class ModelRunner:
    """Owns the VM, the parameters on the device and the KV cache of one loaded model.

    ``device`` is ``cpu`` or ``cuda`` (``package_device``). On the CPU the parameter tensors share
    the arrays' memory (no copy), so ``params`` must stay unchanged; on a GPU each array is
    uploaded once as it arrives and may be dropped after.
    """

    def __init__(self, library: Path, params: Iterable[np.ndarray], cache: CacheShape, threads: int | None = None,
                 device: str = "cpu"):
        if threads:
            # TVM gives its pool (one per process) as many workers as TVM_NUM_THREADS says when the
            # first parallel kernel runs, and never more: let it hold every core this process may
            # use, so a later set_threads can grow as well as shrink it (set_threads below picks
            # how many run). Without this the first model loaded capped every later one.
            os.environ["TVM_NUM_THREADS"] = str(max(threads, len(os.sched_getaffinity(0))))
        ensure_loaded()
        if device != "cpu" and tvm_ffi.get_global_func(f"device_api.{device}", allow_missing=True) is None:
            raise TargetError(f"{library.parent} runs on a {device.upper()} GPU, and this TVM runtime was built "
                              f"without {device.upper()} (the PyPI wheel is CPU-only); run it with a TVM runtime "
                              f"built with USE_{device.upper()}=ON")
        self.cache_shape = cache
        self.device = tvm_ffi.device(device, 0)
        self._host = tvm_ffi.device("cpu", 0)
        self.vm = tvm_ffi.load_module(str(library))["vm_load_executable"]()
        devices = [self.device] if device == "cpu" else [self.device, self._host]  # the host comes last
        self.vm["vm_initialization"](*[v for d in devices for v in (d.dlpack_device_type(), d.index,
                                                                     _POOLED_ALLOCATOR)])
        # One FFI array, converted once: a Python list of the ~400 tensors was converted again at
        # every call (~8 us a call on Zen 5, two calls a decode step).
        self.params = tvm_ffi.Array([self._to_device(p) for p in params])
        self._embed = self.vm["embed"]
        self._prefill = self.vm["prefill"]
        self._prefill_all = self.vm["prefill_all"]
        try:
            self._prefill_ragged = self.vm["prefill_ragged"]
        except AttributeError:  # packed before mixed steps: it runs, new prompts are prefilled whole
            self._prefill_ragged = None
            log.warning("%s has no prefill_ragged (packed by an older edge-os): a new prompt is prefilled "
                        "whole while other streams wait; re-pack it to prefill prompts beside them", library)
        self._decode = self.vm["decode"]
        self.kv = self.vm["create_paged_kv_cache"](
            shape([cache.max_batch_size]), shape([cache.max_total_tokens]),
            shape([cache.prefill_chunk]), shape([PAGE_TOKENS]), shape([0]),
        )
        builtin = tvm_ffi.get_global_func
        self._add = builtin("vm.builtin.kv_state_add_sequence")
        self._remove = builtin("vm.builtin.kv_state_remove_sequence")
        self._begin = builtin("vm.builtin.kv_state_begin_forward")
        self._end = builtin("vm.builtin.kv_state_end_forward")
        self._popn = builtin("vm.builtin.kv_state_popn")
        self._length = builtin("vm.builtin.attention_kv_cache_get_sequence_length")
        self._free_pages = builtin("vm.builtin.attention_kv_cache_get_num_available_pages")
        self._fork = builtin("vm.builtin.kv_state_fork_sequence")
        self._reshape = builtin("vm.builtin.reshape")
        # Token ids reach the kernels through one buffer kept for them (a tensor view of it per
        # count of ids), the embeddings stay where the VM wrote them, and a step's shapes are made
        # once. Made afresh at each call (an aligned numpy array, DLPack tensors, the embeddings
        # through numpy and back) they cost ~0.1 ms of a 3.2 ms decode step on Zen 5: host code
        # runs with cold caches once a step's 96 MB of weights have streamed through.
        self._ids = aligned_empty((max(cache.max_batch_size, cache.prefill_chunk),), np.int32)
        self._id_tensors: dict[int, tvm_ffi.Tensor] = {}
        self._shapes: dict[tuple[int, ...], tvm_ffi.Shape] = {}
        self._config_threadpool = builtin("runtime.config_threadpool")
        self._num_threads = builtin("runtime.NumThreads")
        if threads:
            self.set_threads(threads)

    # --- threads -----------------------------------------------------------------------------
    def set_threads(self, threads: int) -> int:
        """Resize TVM's thread pool (one per process: every loaded model follows); the next
        forward runs on it. Returns the threads the pool now really has."""
        self._config_threadpool(_BIG_CORES, int(threads))
        return self.threads()

    def threads(self) -> int:
        """The threads TVM's pool runs parallel kernels on."""
        return int(self._num_threads())

    # --- sequences ---------------------------------------------------------------------------
    def add_sequence(self, seq_id: int) -> None:
        self._add(self.kv, int(seq_id))

    def remove_sequence(self, seq_id: int) -> None:
        self._remove(self.kv, int(seq_id))

    def sequence_length(self, seq_id: int) -> int:
        return int(self._length(self.kv, int(seq_id)))

    def fork(self, parent_id: int, child_id: int, tokens: int) -> None:
        """Add ``child_id`` holding the first ``tokens`` of ``parent_id``: whole pages are shared,
        not copied, and stay while either sequence holds them."""
        self._fork(self.kv, int(parent_id), int(child_id), int(tokens))

    def truncate(self, seq_id: int, drop: int) -> None:
        """Forget the last ``drop`` tokens of a sequence (to re-feed them differently)."""
        if drop > 0:
            self._popn(self.kv, int(seq_id), int(drop))

    def free_tokens(self) -> int:
        return int(self._free_pages(self.kv)) * PAGE_TOKENS

    # --- forwards ----------------------------------------------------------------------------
    def _to_device(self, array: np.ndarray) -> tvm_ffi.Tensor:
        tensor = to_tensor(array)
        return tensor if self.device == self._host else tensor.copyto(self.device)

    def _to_host(self, tensor: tvm_ffi.Tensor) -> np.ndarray:
        return to_numpy(tensor if tensor.device == self._host else tensor.copyto(self._host))

    def _ids_tensor(self, token_ids: list[int]) -> tvm_ffi.Tensor:
        """The ids as an int32 tensor on the device: on the CPU a view of the kept buffer, valid
        until the next forward (forwards run one at a time)."""
        count = len(token_ids)
        if count > len(self._ids):
            return self._to_device(np.asarray(token_ids, dtype=np.int32))
        self._ids[:count] = token_ids
        tensor = self._id_tensors.get(count)
        if tensor is None:
            tensor = self._id_tensors[count] = to_tensor(self._ids[:count])
        return tensor if self.device == self._host else tensor.copyto(self.device)

    def _embedded(self, token_ids: list[int], rows: int) -> tvm_ffi.Tensor:
        """Embeddings of the ids as ``(rows, len / rows, hidden)``, left where the VM wrote them."""
        embeds = self._embed(self._ids_tensor(token_ids), self.params)
        return self._reshape(embeds, self._shape((rows, len(token_ids) // rows, embeds.shape[-1])))

    def _shape(self, dims: tuple[int, ...]) -> tvm_ffi.Shape:
        """``shape(dims)``, made once for each (batch sizes, prompt chunk lengths: a few hundred)."""
        made = self._shapes.get(dims)
        if made is None:
            made = self._shapes[dims] = shape(dims)
        return made

    def prefill(self, seq_id: int, token_ids: list[int], all_logits: bool = False) -> np.ndarray:
        """Append ``token_ids`` to a sequence; logits of the last token ``(vocab,)``, or of every
        token ``(len, vocab)`` when ``all_logits``."""
        chunk = self.cache_shape.prefill_chunk
        outputs = []
        for start in range(0, len(token_ids), chunk):
            piece = token_ids[start:start + chunk]
            hidden = self._embedded(piece, 1)
            self._begin(self.kv, shape([seq_id]), shape([len(piece)]))
            fn = self._prefill_all if all_logits else self._prefill
            logits, _ = fn(hidden, self.kv, self.params)
            self._end(self.kv)
            outputs.append(self._to_host(logits)[0])
        if all_logits:
            return np.concatenate(outputs, axis=0)
        return outputs[-1][-1]

    @property
    def mixes_prompts(self) -> bool:
        """Whether ``forward`` can carry decode tokens and prompt chunks in one call."""
        return self._prefill_ragged is not None

    def forward(self, seq_ids: list[int], token_ids: list[list[int]]) -> np.ndarray:
        """Append to several sequences at once, in one call: ``token_ids[i]`` (one or more) to
        ``seq_ids[i]`` (a running stream's decode token beside a new prompt's chunk). Logits of
        each sequence's last token ``(len(seq_ids), vocab)``; all the tokens must fit in one
        prefill chunk."""
        lengths = [len(ids) for ids in token_ids]
        flat = [t for ids in token_ids for t in ids]
        if len(flat) > self.cache_shape.prefill_chunk:
            raise ValueError(f"{len(flat)} tokens in one forward but the cache takes {self.cache_shape.prefill_chunk} "
                             "at once; carry fewer prompt tokens per call")
        hidden = self._embedded(flat, 1)
        last = self._to_device(np.cumsum(lengths, dtype=np.int32) - 1)
        self._begin(self.kv, shape(seq_ids), shape(lengths))
        logits, _ = self._prefill_ragged(hidden, last, self.kv, self.params)
        self._end(self.kv)
        return self._to_host(logits)[0]

    def decode(self, seq_ids: list[int], token_ids: list[int]) -> np.ndarray:
        """One token for each sequence, batched: logits ``(batch, vocab)``."""
        embeds = self._embedded(token_ids, len(seq_ids))
        self._begin(self.kv, shape(seq_ids), self._shape((1,) * len(seq_ids)))
        logits, _ = self._decode(embeds, self.kv, self.params)
        self._end(self.kv)
        return self._to_host(logits)[:, 0, :]
