"""What a caller asks of an engine, and the events it gets back.

These types are the contract between the engine, the scheduler and every front door (CLI, MQTT,
HTTP, agent): a ``GenerationRequest`` goes in, an iterator of ``Event`` comes out.
"""

from __future__ import annotations

import enum
import math
import uuid
from dataclasses import dataclass, field

from edge_os.errors import InputError


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. ``temperature == 0`` means greedy."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise InputError(f"temperature must be a number >= 0 (got {self.temperature}); use 0 for greedy")
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0 (got {self.top_k}); use 0 to disable it")
        if not (0 < self.top_p <= 1):
            raise InputError(f"top_p must be in (0, 1] (got {self.top_p}); use 1 to disable it")
        if self.seed is not None and self.seed < 0:
            raise InputError(f"seed must be >= 0 (got {self.seed}); leave it out for a random seed")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise InputError(
                f"repetition_penalty must be > 0 (got {self.repetition_penalty}); use 1 to disable it"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Priority(enum.IntEnum):
    """Lower value is served first."""

    INTERACTIVE = 0
    BACKGROUND = 1


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. Exactly one of ``prompt`` (raw text) or ``messages`` (chat) is set.

    A ``prompt`` is rendered as a single user message with the model's chat template unless
    ``raw`` is true. ``deadline`` is a ``time.monotonic()`` instant after which the request must
    not start (and stops if running).
    """

    prompt: str | None = None
    messages: tuple[dict, ...] | None = None
    raw: bool = False
    model: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    priority: Priority = Priority.INTERACTIVE
    deadline: float | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise InputError("give exactly one of a prompt or chat messages")
        if self.max_tokens < 1:
            raise InputError(f"max_tokens must be >= 1 (got {self.max_tokens})")
        if self.messages is not None:
            for m in self.messages:
                if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(
                    m.get("content"), str
                ):
                    raise InputError('each chat message must be {"role": str, "content": str}')


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Timings:
    """Seconds and rates measured by the engine for one request."""

    ttft_s: float
    prefill_tok_s: float
    decode_tok_s: float


@dataclass(frozen=True)
class TextDelta:
    """Newly decoded text (may be empty while a multi-byte character is incomplete)."""

    text: str
    token_ids: tuple[int, ...]


class FinishReason(str, enum.Enum):
    STOP = "stop"  # an end-of-sequence token or a stop string
    LENGTH = "length"  # max_tokens reached (or the context window is full)
    CANCELLED = "cancelled"
    DEADLINE = "deadline"


@dataclass(frozen=True)
class Finished:
    """The last event of a served request."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings


@dataclass(frozen=True)
class Refused:
    """The scheduler did not serve the request locally.

    ``code`` is one of: ``over_memory``, ``too_hot``, ``low_battery``, ``model_absent``,
    ``deadline``, ``queue_full``, ``invalid_request``, ``engine_error``, ``shutting_down``. When
    ``fallback`` is true another server (the cloud worker) may serve it.
    """

    code: str
    reason: str
    fallback: bool


Event = TextDelta | Finished | Refused
