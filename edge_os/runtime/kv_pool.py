"""Sizes of an engine's paged KV cache, known before anything loads (no TVM here).

The engine allocates its cache from these figures and the scheduler accounts for a package with
the same ones before loading it, so the two cannot drift apart.
"""

from __future__ import annotations

from edge_os.errors import InputError

# TVM's CPU attention kernels assume 16-token pages (other sizes fail at run time).
PAGE_TOKENS = 16
# Context window a package is served with unless told otherwise (also capped by its manifest).
DEFAULT_CONTEXT = 2048
# The smallest context an engine may be loaded with.
MIN_CONTEXT = 16


def serving_context(requested: int | None, name: str, context_length: int) -> int:
    """The one rule for the context an engine is loaded with: ``requested`` must lie in
    ``MIN_CONTEXT``..``context_length`` (the model's own limit), else a one-line error; ``None``
    takes ``DEFAULT_CONTEXT`` capped at ``context_length``."""
    if requested is None:
        return min(DEFAULT_CONTEXT, context_length)
    if not MIN_CONTEXT <= requested <= context_length:
        raise InputError(
            f"a context of {requested} tokens is outside what {name} supports; give --ctx from {MIN_CONTEXT} "
            f"to {context_length}"
        )
    return requested


def cache_tokens(context: int, max_batch: int) -> int:
    """The ``max_total_tokens`` an engine asks TVM's cache for: the context plus a page per sequence."""
    return context + PAGE_TOKENS * max_batch


def pool_tokens(context: int, max_batch: int) -> int:
    """The tokens that cache really holds: TVM adds one page of its own to ``cache_tokens``
    (tests/integration/test_scheduler_engine.py checks this against a loaded engine)."""
    return cache_tokens(context, max_batch) + PAGE_TOKENS
