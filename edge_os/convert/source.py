"""What every importer yields: the model's metadata and its tensors, one at a time.

Tensor names are Hugging Face names (``model.layers.0.self_attn.q_proj.weight``) whatever the
file format, so the model definitions map one naming only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_os.quantize.reference import QuantizedWeight

# Tokens that end an assistant turn in the chat formats we know; generation stops at any of them.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>", "</s>",
                      "<end_of_turn>")


@dataclass
class SourceTensor:
    """One tensor of a model source, loaded on demand.

    ``load()`` returns float32 values, or a ``QuantizedWeight`` when the file holds blocks that
    can be carried over exactly (``quantize.reference.CARRIED_GGUF_TYPES``) and ``keep_blocks`` is true.
    """

    name: str
    shape: tuple[int, ...]  # (rows, cols) for matrices, as in PyTorch
    source_type: str  # F32, F16, BF16, Q4_1, ...
    _load: Callable[[bool], np.ndarray | QuantizedWeight]

    def load(self, keep_blocks: bool = False) -> np.ndarray | QuantizedWeight:
        return self._load(keep_blocks)


@dataclass
class ModelSource:
    """A model to import: its architecture, settings, tokenizer and tensors."""

    path: Path
    architecture: str  # registry key: "llama", "qwen2", ...
    hf_config: dict  # Hugging Face config.json keys
    tokenizer_json: str  # a `tokenizers` JSON document
    chat_template: str | None
    bos_token_id: int | None
    eos_token_ids: list[int]
    add_bos_token: bool
    tensors: Callable[[], Iterator[SourceTensor]]
    tensor_names: list[str] = field(default_factory=list)

