"""A streaming reader of ``.safetensors`` files (8-byte header length, JSON header, raw data).

Written here rather than through the ``safetensors`` package so BF16 needs no PyTorch and each
tensor is memory-mapped only while it is converted.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from edge_os.errors import ModelSourceError

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
           "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8}


def read_header(path: Path) -> tuple[dict, int]:
    """``(tensor table, data offset)``; raises ModelSourceError on a truncated or corrupt file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelSourceError(f"{path} is truncated (no safetensors header); copy it again")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise ModelSourceError(f"{path} is truncated or not a safetensors file; copy it again")
        try:
            header = json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelSourceError(f"{path} has a corrupt safetensors header; copy it again") from exc
    header.pop("__metadata__", None)
    data_start = 8 + length
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise ModelSourceError(f"{path}: tensor {name} has dtype {info['dtype']}, which edge-os cannot read")
        if data_start + info["data_offsets"][1] > size:
            raise ModelSourceError(f"{path} is truncated (tensor {name} ends past the file); copy it again")
    return header, data_start


def load_tensor(path: Path, info: dict, data_start: int) -> np.ndarray:
    """One tensor as float32 (or its integer type)."""
    begin, end = info["data_offsets"]
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + begin, shape=(end - begin,))
    values = raw.view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    if info["dtype"] == "BF16":  # the high half of a float32
        return (values.astype(np.uint32) << 16).view(np.float32)
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    return np.array(values)
