"""Structural checks of a manifest's JSON before any field is used.

A manifest comes from a device's storage or a download: every path it names must be a plain
relative path inside the package, every number must be in a sane range, and every shape must
agree with its byte count, so that nothing it declares can make the runtime read outside the
package or allocate without bound.
"""

from __future__ import annotations

import math
import re

from edge_os.errors import PackageError, printable

MAX_MANIFEST_BYTES = 64 << 20
MAX_CONTEXT = 1 << 24  # tokens; far beyond any edge device's memory
MAX_DIM = 1 << 32
MAX_NDIM = 4
MAX_BYTES = 1 << 44  # no single figure (size, offset, memory) is larger than 16 TiB
MAX_PATH = 255
PARAM_ITEMSIZE = {"float32": 4, "float16": 2, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4,
                  "uint32": 4, "int64": 8}
# Files in a package directory that the manifest does not list: itself and (later) its signature.
UNLISTED = frozenset({"manifest.json", "manifest.sig"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _fail(where: str, what: str) -> None:
    raise PackageError(f"{where}: {what}; re-pack the model or re-flash the package")


def is_plain_relative(rel: object) -> bool:
    """A non-empty relative POSIX path with no '.', '..' or empty parts and no odd characters."""
    if not isinstance(rel, str) or not rel or len(rel) > MAX_PATH or "\\" in rel or "\0" in rel:
        return False
    parts = rel.split("/")
    return rel.isprintable() and not rel.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def _is_int(value: object, lo: int = 0, hi: int = MAX_BYTES) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _path(where: str, field: str, value: object) -> None:
    if not is_plain_relative(value):
        _fail(where, f"{field} {printable(repr(value))} is not a plain relative path inside the package")


def _typed(where: str, data: dict, field: str, kind, optional: bool = False) -> None:
    value = data.get(field)
    if value is None and optional:
        return
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        _fail(where, f"field {field!r} is missing or is not a {getattr(kind, '__name__', kind)}")


def check_manifest_data(data: object, where: str) -> None:
    """Raise ``PackageError`` (one line) unless ``data`` is a well-formed manifest document."""
    if not isinstance(data, dict):
        _fail(where, "is not a JSON object")
    for field in ("name", "architecture", "tvm_version", "runtime_version", "library"):
        _typed(where, data, field, str)
    for field in ("config", "quantization", "target", "tokenizer", "memory", "files"):
        _typed(where, data, field, dict)
    for field in ("params", "stop_token_ids"):
        _typed(where, data, field, list)
    _typed(where, data, "chat_template", str, optional=True)
    for field in ("source", "limits"):
        _typed(where, data, field, dict, optional=True)
    _typed(where, data, "kv_dtype", str, optional=True)
    if not _is_int(data.get("context_length"), 1, MAX_CONTEXT):
        _fail(where, f"context_length {printable(data.get('context_length'), 40)} is not a whole number "
                     f"from 1 to {MAX_CONTEXT}")
    _check_target(where, data["target"])
    _check_tokenizer(where, data["tokenizer"])
    _check_memory(where, data["memory"])
    if not all(_is_int(t, 0, 1 << 31) for t in data["stop_token_ids"]):
        _fail(where, "stop_token_ids must be token ids")
    config, quant = data["config"], data["quantization"]
    for field in ("num_hidden_layers", "hidden_size"):
        if not _is_int(config.get(field), 1, MAX_DIM):
            _fail(where, f"config.{field} is missing or out of range")
    if not isinstance(quant.get("scheme"), str) or not isinstance(quant.get("scale_dtype"), str) \
            or not isinstance(quant.get("tensors"), dict) \
            or not all(isinstance(f, str) for f in quant["tensors"].values()):
        _fail(where, "quantization needs scheme, scale_dtype and tensors (name: format)")
    limits = data.get("limits") or {}
    if limits and (set(limits) != {"prefill_chunk", "max_batch"}
                   or not all(_is_int(v, 1, MAX_BYTES) for v in limits.values())):
        _fail(where, "limits must be {prefill_chunk, max_batch} as whole numbers")
    _path(where, "library", data["library"])
    _check_files(where, data["files"])
    _check_params(where, data["params"])


def _check_target(where: str, target: dict) -> None:
    _typed(where, target, "name", str)
    _typed(where, target, "arch", str)
    _typed(where, target, "tvm_target", dict)
    features = target.get("cpu_features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        _fail(where, "target.cpu_features must be a list of names")


def _check_tokenizer(where: str, tokenizer: dict) -> None:
    _path(where, "tokenizer.file", tokenizer.get("file"))
    bos = tokenizer.get("bos_token_id")
    if bos is not None and not _is_int(bos, 0, 1 << 31):
        _fail(where, "tokenizer.bos_token_id must be a token id or null")
    if not isinstance(tokenizer.get("add_bos_token", False), bool):
        _fail(where, "tokenizer.add_bos_token must be true or false")


def _check_memory(where: str, memory: dict) -> None:
    for field in ("weight_bytes", "kv_bytes_per_token", "workspace_bytes"):
        if not _is_int(memory.get(field)):
            _fail(where, f"memory.{field} is missing or out of range")


def _check_files(where: str, files: dict) -> None:
    if not files:
        _fail(where, "lists no files, so nothing could be verified")
    for rel, info in files.items():
        _path(where, "files key", rel)
        if rel in UNLISTED:
            _fail(where, f"files must not list {rel}")
        if not isinstance(info, dict) or not _is_int(info.get("size")) or not isinstance(info.get("sha256"), str) \
                or not _HEX64.fullmatch(info["sha256"]):
            _fail(where, f"files[{printable(repr(rel))}] needs a size and a sha256 (64 hex digits)")


def _check_params(where: str, params: list) -> None:
    for i, p in enumerate(params):
        if not isinstance(p, dict) or set(p) != {"name", "shape", "dtype", "shard", "offset", "nbytes"}:
            _fail(where, f"params[{i}] must have exactly name, shape, dtype, shard, offset and nbytes")
        name = printable(p["name"]) if isinstance(p["name"], str) else f"params[{i}]"
        shape = p["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_int(d, 0, MAX_DIM) for d in shape):
            _fail(where, f"parameter {name} has shape {printable(shape)}: at most {MAX_NDIM} dimensions "
                         f"of at most {MAX_DIM}")
        if not isinstance(p["dtype"], str) or p["dtype"] not in PARAM_ITEMSIZE:
            _fail(where, f"parameter {name} has unknown dtype {printable(repr(p['dtype']), 40)}")
        _path(where, f"parameter {name} shard", p["shard"])
        if not _is_int(p["offset"]) or not _is_int(p["nbytes"]):
            _fail(where, f"parameter {name} has a bad offset or byte count")
        expected = math.prod(shape) * PARAM_ITEMSIZE[p["dtype"]]
        if expected != p["nbytes"]:
            _fail(where, f"parameter {name} of shape {shape} needs {expected} bytes, not {p['nbytes']}")
