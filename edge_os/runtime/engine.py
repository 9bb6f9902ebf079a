"""The engine: a verified package, its tokenizer and template, and generation on the paged KV cache.

``Engine.load(path)`` verifies the package and loads it. ``generate(request)`` streams events for
one request; ``start``/``step``/``release`` let the scheduler advance several sequences together
(running ones decode in one batch that also carries the next few tokens of new prompts, so a long
prompt does not stall the streams already running). ``complete`` and ``chat`` are the simplest
use; ``chat_session()`` opens a conversation that keeps its KV cache between turns, so each turn
only prefills what is new.

This module holds the ``Engine`` (its state, ``load``, threads); the rest of the class lives in
mixins with one job each: ``_prompts`` (template and tokens), ``_slots`` (KV-cache sequences and
the prefix cache), ``_stepping`` (prefill and decode steps) and ``_generation`` (``generate``,
``chat``, ``ChatSession``). ``Sequence`` is in ``_sequence``, the load-time checks in ``_loading``.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

from tokenizers import Tokenizer

from edge_os.config import settings
from edge_os.errors import InputError
from edge_os.package.manifest import Manifest
from edge_os.package.reader import open_package, read_params, verified_library
from edge_os.runtime._generation import ChatSession, Generation
from edge_os.runtime._loading import check_kv_fits, tokenizer_from
from edge_os.runtime._prompts import Prompts
from edge_os.runtime._sequence import Sequence
from edge_os.runtime._slots import Slots
from edge_os.runtime._stepping import Stepping
from edge_os.runtime.chat_template import ChatTemplate
from edge_os.runtime.control_tokens import ControlTokens
from edge_os.runtime.grammar import Grammars
from edge_os.runtime.heap import release_free_heap
from edge_os.runtime.kv_pool import cache_tokens, serving_context
from edge_os.runtime.prefix_cache import PrefixCache
from edge_os.runtime.runner import CacheShape, ModelRunner, package_device

log = logging.getLogger(__name__)

__all__ = ["ChatSession", "Engine", "Sequence"]


class Engine(Prompts, Slots, Stepping, Generation):
    """A loaded model package. Not thread-safe: one owner (the scheduler loop or one caller)."""

    def __init__(self, package_dir: Path, manifest: Manifest, runner: ModelRunner, context_tokens: int,
                 tokenizer: Tokenizer, prefill_chunk: int = 0, prefix_cache: bool = True):
        self.package_dir = package_dir
        self.manifest = manifest
        self.name = manifest.name
        self.memory = manifest.memory
        self.runner = runner
        self.context_length = context_tokens
        self.tokenizer = tokenizer
        bos_id = manifest.tokenizer.get("bos_token_id")
        self.bos_id = bos_id if manifest.tokenizer.get("add_bos_token") else None
        eos = manifest.stop_token_ids[0] if manifest.stop_token_ids else None
        self.template = ChatTemplate(manifest.chat_template, self._token_text(bos_id), self._token_text(eos))
        self.stop_ids = set(manifest.stop_token_ids)
        self._control_tokens = ControlTokens(t.content for t in tokenizer.get_added_tokens_decoder().values()
                                             if t.special)
        self._ids = itertools.count()
        vocab_size = int(manifest.config.get("vocab_size") or tokenizer.get_vocab_size(with_added_tokens=True))
        self.grammars = Grammars(tokenizer, vocab_size, sorted(self.stop_ids))
        self.prefill_chunk = prefill_chunk
        # Released sequences kept for the prompts that start like them (None: freed at once).
        self.prefix_cache = PrefixCache() if prefix_cache else None
        self._live: set[int] = set()  # ids of the sequences of requests not yet released

    @property
    def prefill_chunk(self) -> int:
        """The most prompt tokens a step carries beside running streams, over all new sequences
        (the compiled chunk at most; ``MIXED_ROWS`` in ``_stepping`` sets how many it usually carries)."""
        return self._prefill_chunk

    @prefill_chunk.setter
    def prefill_chunk(self, tokens: int) -> None:
        """``tokens`` <= 0: whole prompts in one step (the streams running wait for it)."""
        compiled = self.runner.cache_shape.prefill_chunk
        self._prefill_chunk = min(tokens, compiled) if tokens > 0 else 0

    def _token_text(self, token_id: int | None) -> str:
        return "" if token_id is None else self.tokenizer.id_to_token(token_id) or ""

    @classmethod
    def load(cls, package_dir: str | Path, threads: int | None = None, context_tokens: int | None = None,
             max_batch: int = 8, verify: bool = True, prefill_chunk: int | None = None) -> Engine:
        """Verify and load a package. ``context_tokens`` sizes the KV cache shared by all sequences;
        ``prefill_chunk`` caps the prompt tokens a step carries (``EDGE_OS_PREFILL_CHUNK``)."""
        package_dir = Path(package_dir)
        started = time.perf_counter()
        manifest = open_package(package_dir, verify=verify)
        context = serving_context(context_tokens, manifest.name, manifest.context_length)
        limits = manifest.limits
        if max_batch > limits.get("max_batch", max_batch):
            raise InputError(f"{manifest.name} was compiled for at most {limits['max_batch']} sequences at once "
                             f"(asked for {max_batch}); lower the batch or re-pack the model")
        shape = CacheShape(max_batch_size=max_batch, max_total_tokens=cache_tokens(context, max_batch),
                           prefill_chunk=min(256, context, limits.get("prefill_chunk", 256)))
        check_kv_fits(manifest, shape)
        # The tokenizer first: its parse garbage is handed back before the weights arrive, so the
        # two never add up in the peak. It is parsed from the very bytes whose hash was checked.
        tokenizer = tokenizer_from(package_dir, manifest)
        release_free_heap()
        params = read_params(package_dir, manifest)
        with verified_library(package_dir, manifest) as library:
            runner = ModelRunner(library, params, shape, threads or settings().threads,
                                 device=package_device(manifest.target.tvm_target))
        release_free_heap()
        chunk = settings().prefill_chunk if prefill_chunk is None else prefill_chunk
        engine = cls(package_dir, manifest, runner, context, tokenizer, chunk)
        engine.load_s = time.perf_counter() - started
        log.info("loaded %s in %.2f s (%d MiB of weights, %d-token context)", manifest.name, engine.load_s,
                 manifest.memory.weight_bytes >> 20, context)
        return engine

    # --- threads ---------------------------------------------------------------------------------
    @property
    def threads(self) -> int:
        """The threads the model's kernels really run on now."""
        return self.runner.threads()

    def set_threads(self, threads: int) -> int:
        """Run the next steps on ``threads`` threads (TVM's pool is per process: every engine of
        this process follows). Returns the threads really in use."""
        return self.runner.set_threads(threads)

    def close(self) -> None:
        self.runner = None
