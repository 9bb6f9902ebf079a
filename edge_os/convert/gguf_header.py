"""A bounded first pass over a GGUF file's header, before gguf-py parses it.

gguf-py believes the counts a file declares: a 53-byte file that claims an array of 10^9 strings
makes it loop and allocate for minutes. This scan reads the header as a stream and checks every
count and size against the bytes that are really left in the file and against sane limits, so a
malformed or hostile file is refused in milliseconds with one line saying what is wrong.

It is the one reader of GGUF headers: ``header_architecture`` (the quick look ``open_gguf`` takes
before anything else) walks the same metadata entries under the same checks and stops at
``general.architecture``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from edge_os.errors import ModelSourceError, printable

MAX_KV = 4096  # metadata entries
MAX_TENSORS = 1 << 16
MAX_ARRAY = 1 << 20  # elements of one metadata array (a vocabulary of 262k tokens is the largest known)
MAX_STRING = 1 << 24  # bytes of one metadata string (chat templates are a few KiB)
MAX_KEY = 1 << 10
MAX_DIMS = 4
MAX_DIM = 1 << 40

# value type -> (struct format, size); 8 = string, 9 = array
_SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
            7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class HeaderSummary:
    version: int
    tensor_count: int
    kv_count: int
    array_lengths: dict[str, int]  # metadata key -> number of elements, for array values
    architecture: str | None = None  # general.architecture, when it is a string


class _Stream:
    def __init__(self, f: BinaryIO, size: int, path: Path):
        self.f, self.size, self.path, self.pos = f, size, path, 0

    def fail(self, what: str) -> None:
        raise ModelSourceError(f"{self.path} is not a readable GGUF file: {what}; download or copy it again")

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            self.fail(f"{what} needs {n} bytes but only {self.size - self.pos} remain")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            self.fail(f"{what} is cut short")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, 1)
        self.pos += n

    def unpack(self, fmt: str, size: int, what: str):
        return struct.unpack(fmt, self.read(size, what))[0]

    def string(self, what: str, limit: int = MAX_STRING) -> bytes:
        length = self.unpack("<Q", 8, f"the length of {what}")
        if length > limit:
            self.fail(f"{what} is {length} bytes long (at most {limit})")
        return self.read(length, what)


def scan_gguf_header(path: Path, type_sizes: dict[int, tuple[int, int]]) -> HeaderSummary:
    """Check a GGUF header's counts, strings, arrays and tensor extents; ``type_sizes`` maps a
    GGML type number to ``(block elements, block bytes)``. Raises ``ModelSourceError``."""
    size = path.stat().st_size
    with open(path, "rb", buffering=1 << 16) as f:
        s = _Stream(f, size, path)
        version, tensor_count, kv_count = _preamble(s)
        arrays: dict[str, int] = {}
        alignment = 32
        architecture = None
        for key, kind, value in _metadata(s, kv_count):
            if kind == _ARRAY:
                arrays[key] = value
            elif key == "general.alignment":
                if not isinstance(value, int) or value <= 0 or value & (value - 1) or value > 1 << 16:
                    s.fail(f"general.alignment {value} is not a power of two up to 65536")
                alignment = value
            elif key == "general.architecture" and kind == _STRING and architecture is None:
                architecture = value.decode("utf-8", "replace")
        extents = []
        for _ in range(tensor_count):
            name = printable(s.string("a tensor name", MAX_KEY).decode("utf-8", "replace"))
            n_dims = s.unpack("<I", 4, f"the rank of tensor {name}")
            if n_dims == 0 or n_dims > MAX_DIMS:
                s.fail(f"tensor {name} has {n_dims} dimensions (1 to {MAX_DIMS} are possible)")
            dims = [s.unpack("<Q", 8, f"a dimension of tensor {name}") for _ in range(n_dims)]
            if any(d == 0 or d > MAX_DIM for d in dims):
                s.fail(f"tensor {name} has shape {dims}")
            kind = s.unpack("<I", 4, f"the type of tensor {name}")
            offset = s.unpack("<Q", 8, f"the offset of tensor {name}")
            if kind not in type_sizes:
                s.fail(f"tensor {name} has unknown type number {kind}")
            block, block_bytes = type_sizes[kind]
            elements = math.prod(dims)
            if dims[0] % block:
                s.fail(f"tensor {name}'s rows of {dims[0]} do not fill blocks of {block}")
            extents.append((name, offset, elements // block * block_bytes))
        data_start = s.pos + (-s.pos) % alignment
        for name, offset, nbytes in extents:
            if data_start + offset + nbytes > size:
                raise ModelSourceError(
                    f"{path} is truncated or corrupt ({size} bytes, tensor {name} needs "
                    f"{data_start + offset + nbytes}); download or copy it again")
    return HeaderSummary(version, tensor_count, kv_count, arrays, architecture)


def header_architecture(path: Path) -> str | None:
    """``general.architecture`` read from the metadata without going further (a 262k-token
    vocabulary takes the full reader a minute); None when the header is not one ``scan_gguf_header``
    accepts up to that entry (the scan then says what is wrong) or names no architecture."""
    size = path.stat().st_size
    try:
        with open(path, "rb", buffering=1 << 16) as f:
            s = _Stream(f, size, path)
            _version, _tensors, kv_count = _preamble(s)
            for key, kind, value in _metadata(s, kv_count):
                if key == "general.architecture" and kind == _STRING:
                    return value.decode("utf-8", "replace")
    except ModelSourceError:
        return None
    return None


def _preamble(s: _Stream) -> tuple[int, int, int]:
    """Magic, version and the two counts, checked: ``(version, tensor count, metadata count)``."""
    if s.read(4, "the magic number") != b"GGUF":
        s.fail("it does not start with GGUF")
    version = s.unpack("<I", 4, "the version")
    if version not in (2, 3):
        s.fail(f"version {version} is not supported (2 and 3 are)")
    tensor_count = s.unpack("<Q", 8, "the tensor count")
    kv_count = s.unpack("<Q", 8, "the metadata count")
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        s.fail(f"it declares {tensor_count} tensors and {kv_count} metadata entries "
               f"(at most {MAX_TENSORS} and {MAX_KV})")
    return version, tensor_count, kv_count


def _metadata(s: _Stream, kv_count: int) -> Iterator[tuple[str, int, object]]:
    """Each metadata entry as ``(key, value type, value)``: a scalar, a string's bytes, or an
    array's length (its elements are skipped)."""
    for _ in range(kv_count):
        key = printable(s.string("a metadata key", MAX_KEY).decode("utf-8", "replace"))
        kind = s.unpack("<I", 4, f"the type of {key}")
        yield key, kind, _skip_array(s, key) if kind == _ARRAY else _skip_value(s, kind, key)


def _skip_value(s: _Stream, kind: int, key: str):
    """A scalar value, or a string value's bytes."""
    if kind == _STRING:
        return s.string(f"the value of {key}")
    if kind not in _SCALARS:
        s.fail(f"{key} has unknown value type {kind}")
    fmt, size = _SCALARS[kind]
    return s.unpack(fmt, size, f"the value of {key}")


def _skip_array(s: _Stream, key: str) -> int:
    kind = s.unpack("<I", 4, f"the element type of {key}")
    count = s.unpack("<Q", 8, f"the length of {key}")
    if count > MAX_ARRAY:
        s.fail(f"{key} declares {count} elements (at most {MAX_ARRAY})")
    if kind == _STRING:
        s.need(8 * count, f"{key}'s {count} strings")
        for _ in range(count):
            s.string(f"an element of {key}")
    elif kind in _SCALARS:
        s.skip(_SCALARS[kind][1] * count, f"{key}'s {count} elements")
    else:
        s.fail(f"{key} holds elements of type {kind}, which edge-os does not read (nested arrays)")
    return count
