"""Architectures by name. Adding a model family = adding a folder and one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge_os.errors import ModelSourceError


@dataclass(frozen=True)
class Architecture:
    name: str
    config_from_hf: Callable[[dict], object]  # Hugging Face config.json -> config dataclass
    config_from_json: Callable[[dict], object]  # manifest's stored config -> config dataclass
    model_class: type  # nn.Module taking (config, kv_cache_factory)
    fuser: Callable[[str, str], object]  # (fallback format, scale dtype) -> Fuser
    # (where, config, {source tensor name: shape}) -> None; raises ModelSourceError for a missing
    # or misshapen tensor, before anything is loaded or compiled
    check_shapes: Callable[[object, object, dict], None]
    chat_template: str | None = None  # for sources that ship none (Gemma 3's base GGUFs)


def _llama() -> Architecture:
    from edge_os.models.llama import config, model, shapes, weights

    return Architecture("llama", config.llama_config_from_hf, config.LlamaConfig.from_json,
                        model.LlamaForCausalLM, weights.Fuser, shapes.check_source_shapes)


def _qwen2() -> Architecture:
    from edge_os.models.llama import config, model, shapes, weights
    from edge_os.models.qwen2.config import qwen2_config_from_hf

    return Architecture("qwen2", qwen2_config_from_hf, config.LlamaConfig.from_json,
                        model.LlamaForCausalLM, weights.Fuser, shapes.check_source_shapes)


def _gemma3() -> Architecture:
    from edge_os.models.gemma3 import config, model, shapes, weights

    return Architecture("gemma3", config.gemma3_config_from_hf, config.Gemma3Config.from_json,
                        model.Gemma3ForCausalLM, weights.Fuser, shapes.check_source_shapes, config.CHAT_TEMPLATE)


# Hugging Face `architectures` / GGUF `general.architecture` names -> builder
_BUILDERS: dict[str, Callable[[], Architecture]] = {
    "llama": _llama,
    "mistral": _llama,
    "qwen2": _qwen2,
    "gemma3": _gemma3,
}
HF_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Gemma3ForCausalLM": "gemma3",
}


def get_architecture(name: str) -> Architecture:
    if name not in _BUILDERS:
        raise ModelSourceError(f"architecture {name!r} is not supported; supported: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name]()
