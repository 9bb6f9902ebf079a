"""OpenAI request bodies -> ``GenerationRequest``: every field checked, unsupported ones refused.

The official client sends only the fields a caller sets, so a field we cannot honour is a 400
that names it rather than something silently ignored.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

from edge_os.api.errors import ApiError, bad_request
from edge_os.api.tools import parse_tools
from edge_os.errors import InputError, ToolsError
from edge_os.runtime.request import GenerationRequest, OutputConstraint, SamplingParams
from edge_os.runtime.tools import ToolUse, calls_text

# Fields accepted and ignored: they do not change what is generated.
_IGNORED = frozenset({"user", "metadata", "store", "service_tier", "parallel_tool_calls"})
_COMMON = frozenset({
    "model", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "stream", "stream_options",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_k", "repetition_penalty", "ignore_eos",
    "response_format",
}) | _IGNORED
CHAT_FIELDS = _COMMON | {"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice"}
COMPLETION_FIELDS = _COMMON | {"prompt", "echo", "suffix", "best_of"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
MAX_STOPS = 4


@dataclass(frozen=True)
class ApiRequest:
    """A validated completion request: what to generate and how to answer."""

    kind: str  # "chat" or "completion"
    generation: GenerationRequest
    model: str
    stream: bool
    include_usage: bool
    tools: ToolUse | None = None


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc}); send a JSON object", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object", code="invalid_json")
    return data


def parse_chat(data: dict[str, Any], models: list[str], default_max_tokens: int) -> ApiRequest:
    _check_fields(data, CHAT_FIELDS)
    messages = _get(data, "messages", list, required=True)
    if not messages:
        raise bad_request('"messages" must hold at least one message', "messages")
    parsed = tuple(_message(m, i) for i, m in enumerate(messages))
    tools = parse_tools(data)
    if tools is not None:
        if data.get("response_format") not in (None, {"type": "text"}):
            raise bad_request("give tools or a response_format, not both", "response_format")
        parsed = tools.prompt(parsed)
    if _get(data, "top_logprobs", int) not in (None, 0):
        raise bad_request("top_logprobs is not supported", "top_logprobs", "unsupported_parameter")
    if "max_completion_tokens" in data and "max_tokens" in data:
        raise bad_request("give max_tokens or max_completion_tokens, not both", "max_completion_tokens")
    max_name = "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
    api = _request("chat", data, models, default_max_tokens, max_name, messages=parsed)
    if tools is None:
        return api
    return replace(api, tools=tools, generation=replace(api.generation, constraint=tools.constraint()))


def parse_completion(data: dict[str, Any], models: list[str], default_max_tokens: int) -> ApiRequest:
    _check_fields(data, COMPLETION_FIELDS)
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request('"prompt" must be a string (token-id prompts and batches of prompts are not supported)',
                          "prompt", "invalid_type")
    if _get(data, "echo", bool):
        raise bad_request("echo is not supported", "echo", "unsupported_parameter")
    if _get(data, "suffix", str):
        raise bad_request("suffix is not supported", "suffix", "unsupported_parameter")
    if _get(data, "best_of", int) not in (None, 1):
        raise bad_request("best_of must be 1", "best_of", "unsupported_parameter")
    return _request("completion", data, models, default_max_tokens, "max_tokens", prompt=prompt)


def _request(kind: str, data: dict[str, Any], models: list[str], default_max_tokens: int, max_name: str,
             *, messages: tuple[dict, ...] | None = None, prompt: str | None = None) -> ApiRequest:
    model = _get(data, "model", str, required=True)
    if model not in models:
        raise ApiError(404, f"the model {model!r} does not exist here; GET /v1/models lists them (have: "
                       f"{', '.join(models) or 'none'})", code="model_not_found", param="model")
    if _get(data, "n", int) not in (None, 1):
        raise bad_request("n must be 1: this server returns one choice per request", "n", "unsupported_parameter")
    for name in ("presence_penalty", "frequency_penalty"):
        if _get(data, name, float) not in (None, 0.0):
            raise bad_request(f"{name} is not supported; use repetition_penalty (> 1 discourages repeats)",
                              name, "unsupported_parameter")
    if _get(data, "logit_bias", dict):
        raise bad_request("logit_bias is not supported", "logit_bias", "unsupported_parameter")
    if _get(data, "logprobs", (bool, int)):
        raise bad_request("logprobs are not supported", "logprobs", "unsupported_parameter")
    max_tokens = _get(data, max_name, int)
    if max_tokens is not None and max_tokens < 1:
        raise bad_request(f"{max_name} must be at least 1 (got {max_tokens})", max_name)
    stream = bool(_get(data, "stream", bool))
    options = _get(data, "stream_options", dict) or {}
    if options and not stream:
        raise bad_request("stream_options is only allowed with stream: true", "stream_options")
    unknown = sorted(set(options) - {"include_usage"})
    if unknown:
        raise bad_request(f"unknown stream_options {unknown}; supported: include_usage", "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("stream_options.include_usage must be a boolean", "stream_options", "invalid_type")
    try:
        sampling = SamplingParams(
            temperature=_number(data, "temperature", 1.0),
            top_p=_number(data, "top_p", 1.0),
            top_k=_get(data, "top_k", int) or 0,
            repetition_penalty=_number(data, "repetition_penalty", 1.0),
            seed=_get(data, "seed", int),
        )
        generation = GenerationRequest(
            prompt=prompt, messages=messages, raw=prompt is not None, model=model, sampling=sampling,
            max_tokens=max_tokens or default_max_tokens, stop=_stops(data.get("stop")),
            ignore_eos=bool(_get(data, "ignore_eos", bool)),
            constraint=OutputConstraint.from_response_format(data.get("response_format")),
            request_id=("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex,
        )
    except InputError as exc:
        raise bad_request(str(exc)) from None
    return ApiRequest(kind, generation, model, stream, include_usage)


def _message(m: Any, i: int) -> dict:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad_request(f"{where} must be an object with role and content", "messages", "invalid_type")
    role = m.get("role")
    if role not in _ROLES:
        raise bad_request(f"{where}.role must be one of {sorted(_ROLES)} (got {role!r})", "messages")
    content = m.get("content")
    if role == "assistant" and m.get("tool_calls"):
        calls = m["tool_calls"]
        try:
            return {"role": "assistant", "content": (content or "") + calls_text(calls if isinstance(calls, list)
                                                                                 else [None])}
        except ToolsError as exc:
            raise bad_request(f"{where}.{exc}", "messages", "invalid_type") from None
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(f"{where}.content: only text parts are supported", "messages", "unsupported_content")
            texts.append(part["text"])
        content = "".join(texts)
    if not isinstance(content, str):
        raise bad_request(f"{where}.content must be a string or a list of text parts", "messages", "invalid_type")
    return {"role": _ROLES[role], "content": content}


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad_request('"stop" must be a string or a list of non-empty strings', "stop", "invalid_type")
    if len(stops) > MAX_STOPS:
        raise bad_request(f'"stop" may hold at most {MAX_STOPS} strings', "stop")
    return tuple(stops)


def _check_fields(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise bad_request(f"unsupported field(s) {unknown}", unknown[0], "unsupported_parameter")


def _number(data: dict[str, Any], name: str, default: float) -> float:
    value = _get(data, name, float)
    return default if value is None else value


def _get(data: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
    """``data[name]`` if it has the type (ints count as floats, booleans never as numbers)."""
    value = data.get(name)
    if value is None:
        if required:
            raise bad_request(f'"{name}" is required', name, "missing_field")
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    numeric = any(k in (int, float) for k in kinds) and bool not in kinds
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kinds) and not (numeric and isinstance(value, bool))
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise bad_request(f'"{name}" must be {names} (got {json.dumps(value)[:60]})', name, "invalid_type")
    return value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean", list: "an array",
               dict: "an object"}
