"""Gemma 3 settings, from a Hugging Face ``config.json`` (or GGUF metadata mapped to the same keys)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from edge_os.errors import ModelSourceError

# Gemma's turns, for files that ship no template: roles "user" and "model", a system message
# folded into the first user turn, each turn closed by <end_of_turn> (a stop token).
CHAT_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\n' }}"
    "{{ (system if loop.first else '') + message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
# Hugging Face's default: every sixth layer attends globally, the others to a sliding window.
DEFAULT_SLIDING_PATTERN = 6


@dataclass(frozen=True)
class Gemma3Config:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0  # global layers
    rope_local_base_freq: float = 10_000.0  # sliding-window layers
    rope_scaling: dict = field(default_factory=dict)  # global layers only: {} or linear {"factor": f}
    sliding_window: int = 512
    layer_types: tuple[str, ...] = ()  # "sliding_attention" / "full_attention" per layer
    query_pre_attn_scalar: float = 0.0  # 0: head_dim; attention scores are scaled by its -1/2 power
    final_logit_softcapping: float = 0.0  # 0: none
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if not self.layer_types:
            object.__setattr__(self, "layer_types", tuple(
                "full_attention" if (i + 1) % DEFAULT_SLIDING_PATTERN == 0 else "sliding_attention"
                for i in range(self.num_hidden_layers)))
        object.__setattr__(self, "layer_types", tuple(self.layer_types))
        if not self.query_pre_attn_scalar:
            object.__setattr__(self, "query_pre_attn_scalar", float(self.head_dim))

    def is_sliding(self, layer: int) -> bool:
        return self.layer_types[layer] == "sliding_attention"

    @property
    def attention_scale(self) -> float:
        return 1.0 / math.sqrt(self.query_pre_attn_scalar)

    @property
    def max_prefill_chunk(self) -> int:
        """TVM's cache masks the window only against keys cached before a prefill chunk, not
        inside it: a chunk must not be longer than the window."""
        return self.sliding_window

    def paged_kv_options(self) -> dict:
        """How ``edge_os.compile.kv_cache`` builds this model's cache: a sliding window on the
        local layers (TVM's ``mha_sliding``), and no RoPE of its own (the two kinds of layers
        rotate with different bases, so the model rotates q and k itself)."""
        return {"attn_kind": ["mha_sliding" if self.is_sliding(i) else "mha" for i in range(self.num_hidden_layers)],
                "rope": False, "layer_sliding_window_size": self.sliding_window}

    def kv_bytes_per_token(self, kv_dtype: str = "float32") -> int:
        """K and V of every layer for one token (the cache keeps every layer's K/V: the pages are
        shared by all layers, the window only limits what the local layers attend to)."""
        element = {"float32": 4, "float16": 2}[kv_dtype]
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * element

    def to_json(self) -> dict:
        data = asdict(self)
        data["layer_types"] = list(self.layer_types)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Gemma3Config:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def gemma3_config_from_hf(hf: dict) -> Gemma3Config:
    """Map a Hugging Face ``Gemma3ForCausalLM`` (``gemma3_text``) config, or GGUF metadata in its keys."""
    hf = hf.get("text_config", hf)  # the multimodal config nests the text model's settings
    scaling = dict(hf.get("rope_scaling") or {})
    kind = scaling.get("rope_type", scaling.get("type", "linear")) if scaling else None
    if scaling and (kind != "linear" or float(scaling.get("factor", 1.0)) <= 0):
        raise ModelSourceError(f"Gemma 3 with RoPE scaling {kind!r} is not supported; supported: linear")
    try:
        heads = int(hf["num_attention_heads"])
        config = Gemma3Config(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            intermediate_size=int(hf["intermediate_size"]),
            num_hidden_layers=int(hf["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(hf.get("num_key_value_heads") or heads),
            head_dim=int(hf.get("head_dim") or int(hf["hidden_size"]) // heads),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope_theta=float(hf.get("rope_theta", 1_000_000.0)),
            rope_local_base_freq=float(hf.get("rope_local_base_freq", 10_000.0)),
            rope_scaling={"rope_type": "linear", "factor": float(scaling["factor"])} if scaling else {},
            sliding_window=int(hf.get("sliding_window") or 512),
            layer_types=tuple(hf.get("layer_types") or _pattern(hf)),
            query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar") or 0.0),
            final_logit_softcapping=float(hf.get("final_logit_softcapping") or 0.0),
            max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        )
    except KeyError as exc:
        raise ModelSourceError(f"config.json lacks {exc.args[0]!r}, which the model needs") from exc
    except (TypeError, ValueError) as exc:
        raise ModelSourceError(f"config.json has a value that is not a number ({exc}); fix the model's "
                               "settings") from None
    if len(config.layer_types) != config.num_hidden_layers or not set(config.layer_types) <= {
            "sliding_attention", "full_attention"}:
        raise ModelSourceError("config.json: layer_types must name sliding_attention or full_attention for each "
                               f"of the {config.num_hidden_layers} layers")
    if config.sliding_window < 16:
        raise ModelSourceError(f"a sliding window of {config.sliding_window} tokens is below edge-os's 16; "
                               "the model's settings are wrong")
    return config


def _pattern(hf: dict) -> tuple[str, ...]:
    period = int(hf.get("sliding_window_pattern") or DEFAULT_SLIDING_PATTERN)
    return tuple("full_attention" if (i + 1) % period == 0 else "sliding_attention"
                 for i in range(int(hf["num_hidden_layers"])))
