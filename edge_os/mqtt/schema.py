"""The JSON payloads on the wire (documented in docs/mqtt.md).

A request payload is parsed and validated into an ``MqttRequest`` (a ``GenerationRequest`` plus
the fields that travel with it); answers are built by ``delta``, ``final`` and ``error``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edge_os.errors import InputError
from edge_os.runtime.request import GenerationRequest, InferenceRequest, OutputConstraint, Priority, SamplingParams

REQUEST_FIELDS = frozenset(
    {"prompt", "messages", "model", "max_tokens", "temperature", "top_p", "stop", "stream", "priority", "fallback",
     "response_format"}
)
_PRIORITIES = {"interactive": Priority.INTERACTIVE, "background": Priority.BACKGROUND}


class RequestRejected(InputError):
    """A request the bridge answers with an ``error`` message instead of running it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class MqttRequest:
    """A validated request. ``fields`` is the normalised JSON, the form forwarded to the cloud."""

    generation: GenerationRequest | InferenceRequest
    stream: bool
    fields: dict[str, Any]


def parse_request(
    payload: bytes,
    *,
    request_id: str,
    deadline: float | None = None,
    max_bytes: int = 64 * 1024,
    models: tuple[str, ...] = (),
) -> MqttRequest:
    """Validate a request payload; raise ``RequestRejected`` with a stable code if it is bad.

    ``deadline`` (a ``time.monotonic()`` instant) comes from the MQTT message expiry, not the
    payload. ``models``, when not empty, lists the model names this device accepts.
    """
    if len(payload) > max_bytes:
        raise RequestRejected("payload_too_large", f"request is {len(payload)} bytes; the limit is {max_bytes}")
    data = _load_json(payload)
    if not isinstance(data, dict):
        raise RequestRejected("invalid_request", "request payload must be a JSON object")
    if "inputs" in data:
        return _parse_inference(data, request_id, deadline, models)
    unknown = sorted(set(data) - REQUEST_FIELDS)
    if unknown:
        raise RequestRejected("invalid_request", f"unknown field(s) {unknown}; allowed: {sorted(REQUEST_FIELDS)}")

    model = _optional(data, "model", str)
    if model is not None and models and model not in models:
        raise RequestRejected("unknown_model", f"model {model!r} is not served here; known models: {list(models)}")
    fields: dict[str, Any] = {"stream": bool(_optional(data, "stream", bool) or False)}
    if "prompt" in data:
        fields["prompt"] = _optional(data, "prompt", str)
    if "messages" in data:
        messages = _optional(data, "messages", list)
        if not messages:
            raise RequestRejected("invalid_request", '"messages" must be a non-empty list')
        fields["messages"] = messages
    for name, kind in (("model", str), ("max_tokens", int), ("temperature", float), ("top_p", float)):
        value = _optional(data, name, kind)
        if value is not None:
            fields[name] = value
    stop = data.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise RequestRejected("invalid_request", '"stop" must be a string or a list of non-empty strings')
        fields["stop"] = stops
    priority = data.get("priority", "interactive")
    if not isinstance(priority, str) or priority not in _PRIORITIES:
        raise RequestRejected("invalid_request", f'"priority" must be one of {sorted(_PRIORITIES)}')
    fields["priority"] = priority
    if "fallback" in data:
        fields["fallback"] = _optional(data, "fallback", dict)
    if data.get("response_format") is not None:
        fields["response_format"] = data["response_format"]

    try:
        defaults = SamplingParams()
        generation = GenerationRequest(
            prompt=fields.get("prompt"),
            messages=tuple(fields["messages"]) if "messages" in fields else None,
            model=model,
            sampling=SamplingParams(
                temperature=fields.get("temperature", defaults.temperature),
                top_p=fields.get("top_p", defaults.top_p),
            ),
            max_tokens=fields.get("max_tokens", 256),
            stop=tuple(fields.get("stop", ())),
            priority=_PRIORITIES[priority],
            deadline=deadline,
            request_id=request_id,
            constraint=OutputConstraint.from_response_format(fields.get("response_format")),
        )
    except InputError as exc:
        raise RequestRejected("invalid_request", str(exc)) from None
    return MqttRequest(generation=generation, stream=fields["stream"], fields=fields)


def _parse_inference(data: dict, request_id: str, deadline: float | None, models: tuple[str, ...]) -> MqttRequest:
    """An inference request for a TFLite model (fields and arrays: ``edge_os.runtime.arrays``)."""
    from edge_os.runtime.arrays import parse_inference

    try:
        request, encoding = parse_inference(data, request_id=request_id, deadline=deadline)
    except InputError as exc:
        raise RequestRejected("invalid_request", str(exc)) from None
    if models and request.model not in models:
        raise RequestRejected("unknown_model",
                              f"model {request.model!r} is not served here; known models: {list(models)}")
    fields = {"model": request.model, "output_encoding": encoding, "priority": data.get("priority", "interactive")}
    return MqttRequest(generation=request, stream=False, fields=fields)


def result(outputs: dict, latency_s: float, encoding: str, served_by: str) -> bytes:
    """The answer to an inference request: every output by name, encoded as the request asked."""
    from edge_os.runtime.arrays import result_body

    return _dump({"type": "result", **result_body(outputs, latency_s, encoding), "served_by": served_by})


def _load_json(payload: bytes) -> Any:
    """The payload as JSON, strictly UTF-8 (``json.loads`` alone would guess UTF-16 or UTF-32)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestRejected(
            "invalid_encoding",
            f"request payload is not UTF-8 (byte {exc.start} is not valid); encode the JSON as UTF-8",
        ) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise RequestRejected("invalid_json", "request payload is nested too deeply; send a flat JSON object") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python converts (4300 digits)
        raise RequestRejected("invalid_json", f"request payload is not valid JSON: {str(exc)[:200]}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; use a finite number")


def _optional(data: dict, name: str, kind: type) -> Any:
    """``data[name]`` checked against ``kind`` (ints accepted for floats, bools never for numbers)."""
    value = data.get(name)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value, ok = float(value), True
        except OverflowError:  # an integer beyond any float: out of range, like a non-finite number
            value, ok = f"an integer of {len(str(value))} digits", False
    if kind is float and ok and not math.isfinite(value):
        ok = False
    if not ok:
        raise RequestRejected("invalid_request", f'"{name}" must be a {kind.__name__} (got {repr(value)[:80]})')
    return value


def delta(seq: int, text: str) -> bytes:
    """Streamed text; ``seq`` counts deltas of one answer from 0 so receivers can order them."""
    return _dump({"type": "delta", "seq": seq, "text": text})


def final(
    text: str,
    finish_reason: str,
    usage: dict[str, int],
    served_by: str,
    *,
    reason_code: str | None = None,
    reason: str | None = None,
) -> bytes:
    """The one complete answer; ``reason``/``reason_code`` say why the cloud served it."""
    body: dict[str, Any] = {
        "type": "final",
        "text": text,
        "finish_reason": finish_reason,
        "usage": usage,
        "served_by": served_by,
    }
    if reason is not None:
        body["reason_code"] = reason_code
        body["reason"] = reason
    return _dump(body)


def error(code: str, message: str) -> bytes:
    return _dump({"type": "error", "code": code, "message": message})


# A request published retained: the broker replays it at every connection, so it is refused.
RETAINED_REQUEST = ("a request must not be retained (the broker replays it at every connection); publish it with "
                    "retain off, and clear this one with an empty retained payload")


def parse_answer(payload: bytes) -> dict[str, Any]:
    """Decode an answer (``delta``/``final``/``error``) from a cloud worker; raise ``InputError``."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"answer is not JSON: {exc}") from None
    kind = body.get("type") if isinstance(body, dict) else None
    required = {"delta": ("seq", "text"), "final": ("text", "finish_reason", "usage"), "error": ("code", "message")}
    if kind not in required or any(k not in body for k in required[kind]):
        raise InputError(f"not an edge-os answer: {str(body)[:200]}")
    return body


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
