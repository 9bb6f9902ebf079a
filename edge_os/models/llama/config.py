"""Llama architecture settings, from a Hugging Face ``config.json`` or GGUF metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict = field(default_factory=dict)
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # Qwen2 has q/k/v biases
    head_dim: int = 0  # 0: hidden_size // num_attention_heads

    def __post_init__(self) -> None:
        if not self.head_dim:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)

    def kv_bytes_per_token(self, kv_dtype: str = "float32") -> int:
        """K and V of every layer for one token, stored as ``kv_dtype`` (float32 or float16)."""
        element = {"float32": 4, "float16": 2}[kv_dtype]
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * element

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LlamaConfig:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def llama_config_from_hf(hf: dict) -> LlamaConfig:
    """Map a Hugging Face Llama/Mistral ``config.json`` (or GGUF metadata in the same keys)."""
    from edge_os.errors import ModelSourceError

    if hf.get("sliding_window") and hf.get("use_sliding_window", True) and hf.get("model_type") == "mistral":
        if hf["sliding_window"] < hf.get("max_position_embeddings", 0):
            raise ModelSourceError("Mistral with a sliding window is not supported yet; use a model without one")
    try:
        return LlamaConfig(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            intermediate_size=int(hf["intermediate_size"]),
            num_hidden_layers=int(hf["num_hidden_layers"]),
            num_attention_heads=int(hf["num_attention_heads"]),
            num_key_value_heads=int(hf.get("num_key_value_heads") or hf["num_attention_heads"]),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
            rope_theta=float(hf.get("rope_theta", 10000.0)),
            rope_scaling=dict(hf.get("rope_scaling") or {}),
            max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            attention_bias=bool(hf.get("attention_bias", False)),
            head_dim=int(hf.get("head_dim") or 0),
        )
    except KeyError as exc:
        raise ModelSourceError(f"config.json lacks {exc.args[0]!r}, which the model needs") from exc
    except (TypeError, ValueError) as exc:
        raise ModelSourceError(f"config.json has a value that is not a number ({exc}); fix the model's "
                               "settings") from None
