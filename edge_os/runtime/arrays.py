"""Arrays on the wire for TFLite inference requests over MQTT and HTTP (docs/mqtt.md, docs/tflite.md).

An array is either a JSON array of numbers (nested to its shape; cast to the model's input dtype
when the request runs, refused if a value does not fit it) or
``{"dtype": "int8", "shape": [1, 3, 40], "b64": "<base64 of the raw little-endian bytes>"}``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from edge_os.errors import InputError
from edge_os.runtime.request import InferenceRequest, Priority

INFERENCE_FIELDS = frozenset({"model", "inputs", "output_encoding", "priority"})
PRIORITIES = {"interactive": Priority.INTERACTIVE, "background": Priority.BACKGROUND}

DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
MAX_ELEMENTS = 1 << 22


def decode_array(value: Any, where: str) -> np.ndarray:
    """One input array from its JSON form; ``InputError`` naming ``where`` when malformed."""
    if isinstance(value, dict):
        if set(value) != {"dtype", "shape", "b64"}:
            raise InputError(f'{where} must be {{"dtype", "shape", "b64"}} or a JSON array of numbers')
        dtype, shape = value["dtype"], value["shape"]
        if dtype not in DTYPES:
            raise InputError(f"{where}.dtype must be one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or len(shape) > 8 or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_ELEMENTS for d in shape):
            raise InputError(f"{where}.shape must be a list of at most 8 sizes")
        if not isinstance(value["b64"], str):
            raise InputError(f"{where}.b64 must be a base64 string")
        try:
            raw = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InputError(f"{where}.b64 is not valid base64") from None
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if len(raw) != expected:
            raise InputError(f"{where}.b64 holds {len(raw)} bytes; shape {shape} of {dtype} needs {expected}")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    if not isinstance(value, list):
        raise InputError(f"{where} must be a JSON array of numbers or a base64 object")
    try:
        array = np.array(value)
    except ValueError:
        raise InputError(f"{where} is a ragged array; every row must have the same length") from None
    if array.dtype.kind not in "biuf" or array.size > MAX_ELEMENTS:
        raise InputError(f"{where} must hold numbers only (at most {MAX_ELEMENTS})")
    return array


def encode_array(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """An output as ``{"shape", "dtype", "data"}`` (JSON array) or ``{"shape", "dtype", "b64"}``."""
    body: dict[str, Any] = {"shape": list(array.shape), "dtype": array.dtype.name}
    if encoding == "base64":
        body["b64"] = base64.b64encode(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()).decode()
    else:
        body["data"] = array.tolist()
    return body


def parse_inference(data: dict, *, request_id: str | None = None,
                    deadline: float | None = None) -> tuple[InferenceRequest, str]:
    """``{"model", "inputs": array | {name: array}, "output_encoding": "json"|"base64", "priority"}``
    as a request and its output encoding; ``InputError`` (one line) for anything malformed."""
    unknown = sorted(set(data) - INFERENCE_FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) {unknown} in an inference request; allowed: {sorted(INFERENCE_FIELDS)}")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InputError('an inference request names its TFLite model in "model"')
    encoding = data.get("output_encoding", "json")
    if encoding not in ("json", "base64"):
        raise InputError('"output_encoding" must be "json" or "base64"')
    priority = data.get("priority", "interactive")
    if not isinstance(priority, str) or priority not in PRIORITIES:
        raise InputError(f'"priority" must be one of {sorted(PRIORITIES)}')
    raw = data.get("inputs")
    if isinstance(raw, dict) and set(raw) != {"dtype", "shape", "b64"}:
        inputs: Any = {str(k): decode_array(v, f"inputs[{k!r}]") for k, v in raw.items()}
    else:
        inputs = decode_array(raw, "inputs")
    extra = {} if request_id is None else {"request_id": request_id}
    return InferenceRequest(model, inputs, cast=True, priority=PRIORITIES[priority], deadline=deadline,
                            **extra), encoding


def result_body(outputs: dict, latency_s: float, encoding: str) -> dict[str, Any]:
    """Every output by name, encoded as asked, and the invocation's latency."""
    return {"outputs": {name: encode_array(a, encoding) for name, a in outputs.items()},
            "latency_ms": round(latency_s * 1000, 3)}
