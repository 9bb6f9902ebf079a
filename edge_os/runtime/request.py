"""What a caller asks of an engine, and the events it gets back.

These types are the contract between the engine, the scheduler and every front door (CLI, MQTT,
HTTP, agent): a ``GenerationRequest`` goes in, an iterator of ``Event`` comes out.
"""

from __future__ import annotations

import enum
import json
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


@dataclass(frozen=True)
class OutputConstraint:
    """Output that must follow a grammar: ``kind`` ``json_object`` (any object), ``json_schema``
    (``schema``, a JSON Schema as text) or ``structural_tag`` (``schema``: an xgrammar structural
    tag as text: free text with constrained sections, e.g. tool calls). Applied as a token mask
    in the sampler."""

    kind: str
    schema: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("json_object", "json_schema", "structural_tag"):
            raise InputError(f"unknown output constraint {self.kind!r}; use json_object or json_schema")
        if (self.kind != "json_object") != (self.schema is not None):
            raise InputError(f"a {self.kind} constraint needs a schema (and json_object takes none)")

    @classmethod
    def from_response_format(cls, value) -> OutputConstraint | None:
        """OpenAI's ``response_format``: ``{"type": "text"}``, ``{"type": "json_object"}`` or
        ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``."""
        if value is None:
            return None
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "text":
            return None
        if kind == "json_object":
            return cls("json_object")
        if kind != "json_schema":
            raise InputError('response_format.type must be "text", "json_object" or "json_schema"')
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InputError("response_format.json_schema.schema must be a JSON Schema object")
        return cls("json_schema", json.dumps(schema))


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
    constraint: OutputConstraint | None = None

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


_SAMPLING_OPTIONS = ("temperature", "top_k", "top_p", "repetition_penalty", "seed")
_REQUEST_OPTIONS = ("max_tokens", "stop", "ignore_eos", "model", "priority", "raw")


def request_options(options: dict) -> dict:
    """Keyword options of ``Engine.complete``/``Engine.chat`` as ``GenerationRequest`` fields:
    sampling (``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``seed``), ``max_tokens``,
    ``stop`` (a string or several), ``ignore_eos``, ``raw`` and ``response_format`` (OpenAI's form)."""
    unknown = sorted(set(options) - set(_SAMPLING_OPTIONS) - set(_REQUEST_OPTIONS) - {"response_format"})
    if unknown:
        allowed = sorted((*_SAMPLING_OPTIONS, *_REQUEST_OPTIONS, "response_format"))
        raise InputError(f"unknown option(s) {unknown}; allowed: {allowed}")
    fields = {k: options[k] for k in _REQUEST_OPTIONS if k in options}
    if isinstance(fields.get("stop"), str):
        fields["stop"] = (fields["stop"],)
    elif "stop" in fields:
        fields["stop"] = tuple(fields["stop"])
    sampling = {k: options[k] for k in _SAMPLING_OPTIONS if k in options}
    if sampling:
        fields["sampling"] = SamplingParams(**sampling)
    constraint = OutputConstraint.from_response_format(options.get("response_format"))
    if constraint is not None:
        fields["constraint"] = constraint
    return fields


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


@dataclass(frozen=True)
class InferenceRequest:
    """One invocation of a TFLite model: ``inputs`` is one array, a list in input order, or a dict by
    input name (numpy arrays; checked against the model's shapes and dtypes when it runs)."""

    model: str | None
    inputs: object
    cast: bool = False  # JSON numbers: convert to each input's dtype where every value fits
    priority: Priority = Priority.INTERACTIVE
    deadline: float | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class InferenceResult:
    """The last event of a served ``InferenceRequest``: every output by name, and how long it ran."""

    outputs: dict
    latency_s: float


Event = TextDelta | Finished | Refused | InferenceResult
