"""What the API says about the served models (/v1/models) and their tokenizers (/tokenize).

Read from the packages' manifests and tokenizer files; no model is loaded for either.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from edge_os.package.manifest import Manifest
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
    """The cards of the served packages and their tokenizers, loaded on first use."""

    def __init__(self, packages: tuple[Path, ...]) -> None:
        self.cards = {}
        for path in packages:
            if is_tflite_package(Path(path)):
                continue  # no card: TFLite models have no tokenizer or template (/v1/infer runs them)
            manifest = Manifest.read(Path(path))
            self.cards[manifest.name] = ModelCard(manifest.name, Path(path), manifest)
        self._tokenizers: dict[str, Tokenizer] = {}
        self._lock = threading.Lock()

    def tokenizer(self, name: str) -> Tokenizer:
        with self._lock:
            if name not in self._tokenizers:
                card = self.cards[name]
                self._tokenizers[name] = Tokenizer.from_file(str(card.path / card.manifest.tokenizer["file"]))
            return self._tokenizers[name]
