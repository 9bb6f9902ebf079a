"""How Hugging Face Gemma 3 tensors become this model's parameters: Llama's fusing of Q/K/V and
gate/up, and every RMSNorm weight stored as the scale it applies (Gemma keeps ``w`` and multiplies
by ``1 + w``; llama.cpp's GGUF files store ``1 + w``, which the importer turns back into ``w``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edge_os.models.llama.weights import Fuser as LlamaFuser


class Fuser(LlamaFuser):
    def push(self, name: str, value) -> Iterator[tuple[str, object]]:
        if name.endswith("norm.weight") and isinstance(value, np.ndarray):
            value = (value.astype(np.float32) + np.float32(1.0)).astype(np.float32)
        yield from super().push(name, value)
