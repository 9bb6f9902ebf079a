"""The models a scheduler may serve: what each needs (read without loading) and how to load it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_os.package.manifest import Manifest
from edge_os.package.memory import MemoryFigures
from edge_os.package.tflite import is_tflite_package, read_manifest
from edge_os.runtime.api import EngineAPI
from edge_os.runtime.kv_pool import pool_tokens, serving_context


@dataclass(frozen=True)
class ModelInfo:
    """Enough to decide whether a model fits before loading it (from its package manifest).

    ``kv_pool_tokens`` is the KV cache an engine allocates when it loads, shared by all its
    sequences (0 for an engine that allocates pages per request); ``max_batch`` is how many
    sequences it can hold at once (None: no limit). ``code_bytes`` is what loading maps besides
    weights: the compiled library and the tokenizer (small next to real weights, not next to tiny
    ones).
    """

    name: str
    memory: MemoryFigures
    context_length: int
    kv_pool_tokens: int = 0
    max_batch: int | None = None
    code_bytes: int = 0
    version: int | None = None  # the package's release number (``edge-os ps`` shows it)
    package: str | None = None  # the package directory it loads from
    kind: str = "llm"  # or "tflite": a model run on arrays (InferenceRequest), never on prompts

    @property
    def resident_bytes(self) -> int:
        """What the model holds while loaded, before any request: weights, workspace, KV pool, code."""
        return self.resident_bytes_for(self.memory)

    def resident_bytes_for(self, memory: MemoryFigures) -> int:
        """``resident_bytes`` with ``memory`` in place of the manifest's figures (the scheduler passes
        a loaded engine's own)."""
        return memory.bytes_for(self.kv_pool_tokens) + self.code_bytes


@dataclass(frozen=True)
class ModelEntry:
    """A servable model and its residency policy.

    ``load(threads)`` is the injected side effect that builds an engine. ``keep_alive_s`` is how
    long it stays loaded once idle (``math.inf``: until evicted); ``preload`` loads it when the
    scheduler starts; ``pinned`` loads it at start and never unloads it.
    """

    info: ModelInfo
    load: Callable[[int], EngineAPI]
    keep_alive_s: float = 300.0
    preload: bool = False
    pinned: bool = False

    @property
    def name(self) -> str:
        return self.info.name


class Catalog:
    """Models by name; a request without a model goes to the first one added."""

    def __init__(self, entries: list[ModelEntry] | tuple[ModelEntry, ...] = ()):
        self._entries: dict[str, ModelEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: ModelEntry) -> None:
        if entry.keep_alive_s < 0 or math.isnan(entry.keep_alive_s):
            raise ValueError(f"keep_alive_s of {entry.name} must be >= 0")
        self._entries[entry.name] = entry

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str | None) -> ModelEntry | None:
        if name is None:
            return next(iter(self._entries.values()), None)
        return self._entries.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self):
        return iter(self._entries.values())


def package_entry(
    path: str | Path,
    context_tokens: int | None = None,
    max_batch: int = 8,
    keep_alive_s: float = 300.0,
    preload: bool = False,
    pinned: bool = False,
) -> ModelEntry:
    """A model package directory as a catalog entry; reads only its manifest until it is loaded.

    The engine verifies every file's hash when it loads, so a corrupt package is refused then.
    """
    path = Path(path)
    if is_tflite_package(path):
        return tflite_entry(path, keep_alive_s=keep_alive_s, preload=preload, pinned=pinned)
    manifest = Manifest.read(path)
    context = serving_context(context_tokens, manifest.name, manifest.context_length)
    pool = pool_tokens(context, max_batch)  # what Engine.load(context_tokens=context, max_batch=...) allocates
    code = sum(manifest.files.get(f, {}).get("size", 0) for f in (manifest.library, manifest.tokenizer["file"]))
    info = ModelInfo(manifest.name, manifest.memory, context, pool, max_batch, code, manifest.version, str(path))

    def load(threads: int) -> EngineAPI:
        from edge_os.runtime.engine import Engine  # imports TVM: only when a model really loads

        return Engine.load(path, threads=threads, context_tokens=context, max_batch=max_batch)

    return ModelEntry(info, load, keep_alive_s=keep_alive_s, preload=preload, pinned=pinned)


TFLITE_THREADS = 1  # interpreter threads of a TFLite model; the LLM keeps the rest


def tflite_entry(path: str | Path, keep_alive_s: float = 300.0, preload: bool = False,
                 pinned: bool = False) -> ModelEntry:
    """A TFLite package as a catalog entry: its model bytes and measured arena are what it holds."""
    path = Path(path)
    manifest = read_manifest(path)
    info = ModelInfo(manifest.name, manifest.memory, context_length=0, version=manifest.version, package=str(path),
                     kind="tflite")

    def load(threads: int) -> EngineAPI:
        from edge_os.runtime.tflite_engine import TFLiteEngine  # imports the interpreter: only on load

        return TFLiteEngine.load(path, threads=min(threads, TFLITE_THREADS))

    return ModelEntry(info, load, keep_alive_s=keep_alive_s, preload=preload, pinned=pinned)
