"""The source tensors Gemma 3 needs, with their shapes, checked before anything is loaded or compiled."""

from __future__ import annotations

from collections.abc import Iterator

from edge_os.models.gemma3.config import Gemma3Config
from edge_os.models.llama.shapes import check_tensors


def expected_tensors(config: Gemma3Config) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(Hugging Face tensor name, shape) for every tensor the model reads, in order."""
    h, ffn, d = config.hidden_size, config.intermediate_size, config.head_dim
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    yield "model.embed_tokens.weight", (config.vocab_size, h)
    yield "model.norm.weight", (h,)
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            yield f"{p}.{norm}.weight", (h,)
        yield from {
            f"{p}.self_attn.q_proj.weight": (q, h), f"{p}.self_attn.k_proj.weight": (kv, h),
            f"{p}.self_attn.v_proj.weight": (kv, h), f"{p}.self_attn.o_proj.weight": (h, q),
            f"{p}.self_attn.q_norm.weight": (d,), f"{p}.self_attn.k_norm.weight": (d,),
            f"{p}.mlp.gate_proj.weight": (ffn, h), f"{p}.mlp.up_proj.weight": (ffn, h),
            f"{p}.mlp.down_proj.weight": (h, ffn),
        }.items()


def check_source_shapes(where: object, config: Gemma3Config, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every tensor the model needs is in ``shapes`` (name -> shape) with the shape it needs."""
    check_tensors(where, expected_tensors(config), shapes)
