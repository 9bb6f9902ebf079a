"""The loop's records: a request's life (``Job``) and a loaded model (``LoadedModel``).

Only the scheduler loop touches them; the policy sees them through ``ModelView``.
"""

from __future__ import annotations

from edge_os.runtime.api import EngineAPI, Sequence
from edge_os.runtime.request import GenerationRequest, Priority
from edge_os.scheduler.catalog import ModelEntry
from edge_os.scheduler.handle import Handle
from edge_os.scheduler.policy import ModelView


class Job:
    """One request's life in the scheduler: queued, then running on a loaded model."""

    def __init__(self, request: GenerationRequest, handle: Handle, arrival: int, now: float):
        self.request = request
        self.handle = handle
        self.arrival = arrival
        self.submitted_at = now
        self.entry: ModelEntry | None = None
        self.kv_tokens = 0  # reserved, in whole pages
        self.seq: Sequence | None = None
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.first_token_at: float | None = None
        self.wait_reason: str | None = None
        self.blocked_after: int | None = None  # the last arrival when it first had to wait
        self.model: LoadedModel | None = None  # the loaded engine it runs on, once started

    @property
    def order(self) -> tuple[int, int]:
        return (int(self.request.priority), self.arrival)

    @property
    def background(self) -> bool:
        return self.request.priority == Priority.BACKGROUND

    @property
    def kv_bytes(self) -> int:
        """KV bytes this request adds to the budget (none when the engine's pool holds them)."""
        info = self.entry.info
        return 0 if info.kv_pool_tokens else self.kv_tokens * info.memory.kv_bytes_per_token

    @property
    def unbacked_bytes(self) -> int:
        """Reserved KV bytes not allocated yet (an engine with a pool allocated them at load)."""
        if self.entry.info.kv_pool_tokens or self.seq is None:
            return 0
        return max(0, self.kv_tokens - self.seq.kv_tokens) * self.entry.info.memory.kv_bytes_per_token


class LoadedModel:
    """A loaded model and the requests it is serving."""

    def __init__(self, entry: ModelEntry, engine: EngineAPI, threads: int, now: float):
        self.entry = entry
        self.engine = engine
        self.asked_threads = threads  # what the governor allowed when last applied
        self.resident = entry.info.resident_bytes_for(engine.memory)
        self.jobs: list[Job] = []
        self.last_used = now
        self.step_estimate_s: float | None = None  # running estimate of one engine step (periodic models yield)
        self.retiring = False  # a new version replaced it; it only finishes the requests it runs

    @property
    def threads(self) -> int:
        """The threads the engine really runs on (asked of its runtime, not remembered)."""
        return self.engine.threads

    def has_room(self, job: Job) -> bool:
        """Whether the engine itself can take ``job``: a free batch slot and pages in its KV pool."""
        info = self.entry.info
        if info.max_batch is not None and len(self.jobs) >= info.max_batch:
            return False
        return not info.kv_pool_tokens or self.reserved_tokens + job.kv_tokens <= info.kv_pool_tokens

    @property
    def reserved_tokens(self) -> int:
        return sum(j.kv_tokens for j in self.jobs)

    def view(self) -> ModelView:
        return ModelView(
            name=f"{self.entry.name} (replaced)" if self.retiring else self.entry.name,
            resident=self.resident,
            kv=sum(j.kv_bytes for j in self.jobs),
            active=len(self.jobs),
            pinned=self.entry.pinned,
            last_used=self.last_used,
            keep_alive_s=self.entry.keep_alive_s,
        )
