"""Qwen2 settings: Llama's, with q/k/v biases always on."""

from __future__ import annotations

from edge_os.models.llama.config import LlamaConfig, llama_config_from_hf


def qwen2_config_from_hf(hf: dict) -> LlamaConfig:
    if hf.get("use_sliding_window"):
        from edge_os.errors import ModelSourceError

        raise ModelSourceError("Qwen2 with use_sliding_window is not supported yet")
    return llama_config_from_hf({**hf, "attention_bias": True})
