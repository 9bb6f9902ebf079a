"""``manifest.json``: everything a device needs to decide about a package without loading it."""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_os.errors import PackageError, printable
from edge_os.package.checks import MAX_MANIFEST_BYTES, check_manifest_data
from edge_os.package.memory import MemoryFigures

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"



@dataclass(frozen=True)
class ParamEntry:
    """One parameter array: where it lies in which shard."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    shard: str
    offset: int
    nbytes: int


@dataclass(frozen=True)
class TargetInfo:
    name: str
    arch: str  # x86_64, aarch64
    tvm_target: dict  # resolved (mcpu filled in)
    cpu_features: tuple[str, ...] = ()  # /proc/cpuinfo flags the compiled code needs


@dataclass(frozen=True)
class Manifest:
    name: str
    architecture: str
    config: dict
    # {"scheme": str, "scale_dtype": str, "decode_activations": str, "tensors": {param base name: format}}
    quantization: dict
    target: TargetInfo
    tvm_version: str
    runtime_version: str
    library: str
    tokenizer: dict  # {"file": "tokenizer.json", "bos_token_id": int|None, "add_bos_token": bool}
    chat_template: str | None
    stop_token_ids: tuple[int, ...]
    context_length: int
    memory: MemoryFigures
    params: tuple[ParamEntry, ...]
    files: dict = field(default_factory=dict)  # relative path -> {"sha256": hex, "size": bytes}
    source: dict = field(default_factory=dict)
    # The largest calls the library was planned for: {"prefill_chunk": tokens, "max_batch":
    # sequences per decode}; empty for libraries planned without bounds.
    limits: dict = field(default_factory=dict)
    kv_dtype: str = "float32"  # what the KV cache pages hold (packages from before this field: float32)
    # Release number of this model name, raised by each release; devices refuse a lower one
    # (anti-rollback, edge_os.deploy). Packages from before this field: 1.
    version: int = 1
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["memory"] = self.memory.to_json()
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST) -> Manifest:
        """Parse and check a manifest; any malformed field is a one-line ``PackageError``."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; deep nesting recurses
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise PackageError(f"{where} is not valid JSON ({reason}); re-pack or re-flash the package") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise PackageError(
                f"{where} has schema version {printable(version, 20)}, this edge-os reads version {SCHEMA_VERSION}; "
                "re-pack the model with this edge-os version"
            )
        if data.get("kind") == "tflite":
            raise PackageError(f"{where} is a TFLite package; run it with `edge-os infer -m PACKAGE` "
                               "or serve it, it does not generate text")
        check_manifest_data(data, where)
        try:
            data["target"] = TargetInfo(**{**data["target"], "cpu_features": tuple(data["target"]["cpu_features"])})
            data["memory"] = MemoryFigures.from_json(data["memory"])
            data["params"] = tuple(ParamEntry(**{**p, "shape": tuple(p["shape"])}) for p in data["params"])
            data["stop_token_ids"] = tuple(data["stop_token_ids"])
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise PackageError(
                f"{where} is missing or has a malformed field ({printable(exc)}); re-pack the model") from exc

    @classmethod
    def read(cls, package_dir: Path) -> Manifest:
        """Read ``manifest.json`` of a package (never through a symbolic link)."""
        path = Path(package_dir) / MANIFEST
        if not Path(package_dir).exists():
            raise PackageError(f"{package_dir} does not exist; give the directory of a package made by `edge-os pack`")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise PackageError(
                f"{package_dir} is not a model package (no {MANIFEST}); pack one with `edge-os pack`") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PackageError(f"{path} is a symbolic link; a package's files must be plain files") from None
            raise
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise PackageError(f"{path} is not a plain file; re-pack or re-flash the package")
            raw = f.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise PackageError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; it is not a manifest")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PackageError(f"{path} is not UTF-8 text; re-pack or re-flash the package") from None
        return cls.from_json(text, str(path))
