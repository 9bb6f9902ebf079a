"""Arrays on the wire for TFLite inference requests over MQTT (documented in docs/mqtt.md).

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
