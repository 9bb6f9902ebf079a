"""What the API says about the served models (/v1/models) and their tokenizers (/tokenize).

Read from the packages' manifests and tokenizer files; no model is loaded for either.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from edge_os.package.manifest import MANIFEST, Manifest
from edge_os.package.tflite import is_tflite_package


@dataclass(frozen=True)
class ModelCard:
    name: str
    path: Path
    manifest: Manifest

    def describe(self, created: int, context_length: int | None) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": self.name, "object": "model", "created": created, "owned_by": "edge-os",
            "architecture": m.architecture,
            "quantization": m.quantization,
            "context_length": context_length or m.context_length,
            "memory": m.memory.to_json(),
            "kv_dtype": m.kv_dtype,
        }


class ModelCards:
    """The cards of the served packages and their tokenizers, loaded on first use.

    ``packages`` are those served at start; a row of the scheduler's status names the package it
    serves now (``serve --root`` switches versions and adds or removes models while running), and
    ``card_for`` reads that package's manifest, again whenever the manifest file changes.
    """

    def __init__(self, packages: tuple[Path, ...]) -> None:
        self.cards = {}
        for path in packages:
            if is_tflite_package(Path(path)):
                continue  # no card: TFLite models have no tokenizer or template (/v1/infer runs them)
            manifest = Manifest.read(Path(path))
            self.cards[manifest.name] = ModelCard(manifest.name, Path(path), manifest)
        self._by_package: dict[tuple, ModelCard] = {}
        self._tokenizers: dict[Path, Tokenizer] = {}
        self._lock = threading.Lock()

    def card_for(self, row: dict[str, Any]) -> ModelCard | None:
        """The card of what a status row serves now (None: a TFLite model, or no package known)."""
        package = row.get("package")
        if row.get("kind", "llm") == "tflite":
            return None
        if not package:
            return self.cards.get(row["name"])
        path = Path(package)
        try:
            stat = (path / MANIFEST).stat()
        except OSError:
            return None  # replaced under us: the next status names the new one
        key = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            card = self._by_package.get(key)
        if card is None:
            manifest = Manifest.read(path)
            card = ModelCard(manifest.name, path, manifest)
            with self._lock:
                self._by_package = {k: v for k, v in self._by_package.items() if k[0] != key[0]}
                self._by_package[key] = card
                self._tokenizers.pop(path, None)
        return card

    def tokenizer(self, card: ModelCard) -> Tokenizer:
        with self._lock:
            if card.path not in self._tokenizers:
                self._tokenizers[card.path] = Tokenizer.from_file(str(card.path / card.manifest.tokenizer["file"]))
            return self._tokenizers[card.path]
