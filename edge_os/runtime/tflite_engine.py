"""A loaded TFLite package as the scheduler holds it: its name, the memory it holds, ``run``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_os.package.memory import MemoryFigures
from edge_os.package.tflite import load_model
from edge_os.runtime.tflite import TFLiteModel


class TFLiteEngine:
    """An allocated interpreter of a TFLite package. ``memory`` holds what this load measured:
    the model's bytes as weights and the arena as workspace (no KV cache)."""

    kind = "tflite"
    context_length = 0
    prefix_cache = None  # no prompts to keep

    def __init__(self, name: str, model: TFLiteModel, model_bytes: int, threads: int = 1):
        self.name = name
        self.model = model
        self.threads = max(1, threads)  # the interpreter's, fixed when it was built
        self.memory = MemoryFigures(weight_bytes=model_bytes, kv_bytes_per_token=0, workspace_bytes=model.arena_bytes)

    @classmethod
    def load(cls, package_dir: Path, threads: int = 1) -> TFLiteEngine:
        manifest, model = load_model(package_dir, threads=threads)
        return cls(manifest.name, model, manifest.model_bytes, threads)

    def set_threads(self, threads: int) -> int:
        """An interpreter keeps the threads it was built with; returns them."""
        return self.threads

    def run(self, inputs, cast: bool = False) -> tuple[dict[str, np.ndarray], float]:
        """Every output by name and the seconds the invocation took (``cast``: JSON numbers, see
        ``TFLiteModel.check_inputs``)."""
        began = time.perf_counter()
        outputs = self.model.run(inputs, cast)
        return outputs, time.perf_counter() - began

    def close(self) -> None:
        self.model = None
