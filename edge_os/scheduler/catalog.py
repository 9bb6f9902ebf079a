"""The models a scheduler may serve: what each needs (read without loading) and how to load it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from edge_os.package.memory import MemoryFigures
from edge_os.runtime.api import EngineAPI


@dataclass(frozen=True)
class ModelInfo:
    """Enough to decide whether a model fits before loading it (from its package manifest)."""

    name: str
    memory: MemoryFigures
    context_length: int

    @property
    def resident_bytes(self) -> int:
        """Weights and workspace: what the model holds while loaded, before any request."""
        return self.memory.weight_bytes + self.memory.workspace_bytes


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

    def get(self, name: str | None) -> ModelEntry | None:
        if name is None:
            return next(iter(self._entries.values()), None)
        return self._entries.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self):
        return iter(self._entries.values())
