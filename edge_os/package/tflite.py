"""TFLite packages: ``model.tflite`` plus a ``manifest.json`` of kind ``tflite``.

The manifest records each input's and output's name, shape, dtype and quantization, the tensor
arena measured when the interpreter allocated (the scheduler budgets with it), the interpreter that
measured it, and the sha256 of every file. It is signed and verified like any package
(``edge_os.deploy.signing`` works on any manifest that lists its files).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_os import __version__
from edge_os.errors import InputError, ModelSourceError, PackageError, printable
from edge_os.package.checks import MAX_MANIFEST_BYTES, is_plain_relative
from edge_os.package.manifest import MANIFEST, SCHEMA_VERSION
from edge_os.package.memory import MemoryFigures
from edge_os.package.reader import verified_bytes
from edge_os.package.writer import PackageWriter
from edge_os.runtime.tflite import TensorSpec, TFLiteModel

KIND = "tflite"
MODEL_FILE = "model.tflite"
MAX_MODEL_BYTES = 1 << 30


@dataclass(frozen=True)
class TFLiteManifest:
    name: str
    model: str  # the .tflite file inside the package
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    arena_bytes: int  # measured when the interpreter allocated its tensors
    model_bytes: int
    interpreter: str  # what measured the arena, e.g. "ai-edge-litert 2.3.0"
    runtime_version: str
    files: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    version: int = 1
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION

    @property
    def memory(self) -> MemoryFigures:
        """Figures in the LLM packages' terms: the model as weights, the arena as workspace, no KV."""
        return MemoryFigures(weight_bytes=self.model_bytes, kv_bytes_per_token=0, workspace_bytes=self.arena_bytes)

    def to_json(self) -> str:
        data = asdict(self)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST) -> TFLiteManifest:
        try:
            data = json.loads(text)
            if data.get("schema_version") != SCHEMA_VERSION or data.get("kind") != KIND:
                raise PackageError(f"{where} is not a TFLite manifest of schema version {SCHEMA_VERSION}; "
                                   "re-pack the model with this edge-os")
            data["inputs"] = tuple(TensorSpec.from_json(t) for t in data["inputs"])
            data["outputs"] = tuple(TensorSpec.from_json(t) for t in data["outputs"])
            manifest = cls(**data)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise PackageError(f"{where} is missing or has a malformed field ({printable(exc)}); "
                               "re-pack the model") from None
        if not is_plain_relative(manifest.model) or manifest.model not in manifest.files:
            raise PackageError(f"{where}: model {printable(repr(manifest.model))} is not a file the manifest lists; "
                               "re-pack the model")
        return manifest


def manifest_kind(package_dir: Path) -> str:
    """``tflite`` or ``llm`` from a package's manifest (``llm`` when it cannot tell: the LLM reader
    then gives the precise error)."""
    try:
        with open(Path(package_dir) / MANIFEST, "rb") as f:
            data = json.loads(f.read(MAX_MANIFEST_BYTES))
    except (OSError, ValueError, RecursionError):  # hostile JSON too: the LLM reader says what is wrong
        return "llm"
    return KIND if isinstance(data, dict) and data.get("kind") == KIND else "llm"


def is_tflite_package(package_dir: Path) -> bool:
    return manifest_kind(package_dir) == KIND


def read_manifest(package_dir: Path) -> TFLiteManifest:
    path = Path(package_dir) / MANIFEST
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        raise PackageError(f"{package_dir} is not a model package (no readable {MANIFEST}); "
                           "pack one with `edge-os pack model.tflite --out DIR`") from None
    return TFLiteManifest.from_json(text, str(path))


def load_model(package_dir: Path, threads: int = 1) -> tuple[TFLiteManifest, TFLiteModel]:
    """Open a TFLite package: its model is hashed from the very bytes the interpreter gets."""
    manifest = read_manifest(package_dir)
    if manifest.runtime_version.split(".")[0] != __version__.split(".")[0]:
        raise PackageError(f"package {package_dir} was made by edge-os {manifest.runtime_version}, "
                           f"this is {__version__}; re-pack it")
    data = verified_bytes(Path(package_dir), manifest, manifest.model)
    return manifest, TFLiteModel(data, threads=threads, where=f"{package_dir}/{manifest.model}")


def pack_tflite(source: Path, out: Path, name: str | None = None, force: bool = False) -> Path:
    """Write a package for the ``.tflite`` file ``source`` at ``out`` (atomically)."""
    source = Path(source)
    try:
        size = source.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelSourceError(f"{source} is {size >> 20} MiB; TFLite packages take models up to "
                                   f"{MAX_MODEL_BYTES >> 20} MiB")
        data = source.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{source} is a directory; give a .tflite file") from None
    except FileNotFoundError:
        raise InputError(f"{source} does not exist; give a .tflite file") from None
    model = TFLiteModel(data, threads=1, where=str(source))  # refuses what is not a loadable model
    with PackageWriter(out, overwrite=force) as writer:
        writer.path("weights").rmdir()  # LLM shards only
        writer.path(MODEL_FILE).write_bytes(data)
        manifest = TFLiteManifest(
            name=name or source.stem, model=MODEL_FILE, inputs=model.inputs, outputs=model.outputs,
            arena_bytes=model.arena_bytes, model_bytes=len(data), interpreter=model.interpreter_name,
            runtime_version=__version__, source={"file": source.name},
        )
        return writer.commit_document(lambda files: TFLiteManifest(**{**manifest.__dict__, "files": files}).to_json())
