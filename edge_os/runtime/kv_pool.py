"""Sizes of an engine's paged KV cache, known before anything loads (no TVM here).

The engine allocates its cache from these figures and the scheduler accounts for a package with
the same ones before loading it, so the two cannot drift apart.
"""

from __future__ import annotations

# TVM's CPU attention kernels assume 16-token pages (other sizes fail at run time).
PAGE_TOKENS = 16
# Context window a package is served with unless told otherwise (also capped by its manifest).
DEFAULT_CONTEXT = 2048


def serving_context(requested: int | None, context_length: int) -> int:
    """The context an engine is loaded with: ``requested`` (default ``DEFAULT_CONTEXT``), capped at the
    model's ``context_length``."""
    return min(requested or DEFAULT_CONTEXT, context_length)


def cache_tokens(context: int, max_batch: int) -> int:
    """The ``max_total_tokens`` an engine asks TVM's cache for: the context plus a page per sequence."""
    return context + PAGE_TOKENS * max_batch


def pool_tokens(context: int, max_batch: int) -> int:
    """The tokens that cache really holds: TVM adds one page of its own to ``cache_tokens``
    (tests/integration/test_scheduler_engine.py checks this against a loaded engine)."""
    return cache_tokens(context, max_batch) + PAGE_TOKENS
