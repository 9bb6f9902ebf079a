"""The source tensors a Llama-family model needs, with their shapes, checked before anything is
loaded or compiled (a file whose header disagrees with its settings fails in one line)."""

from __future__ import annotations

from collections.abc import Iterator

from edge_os.errors import ModelSourceError
from edge_os.models.llama.config import LlamaConfig


def expected_tensors(config: LlamaConfig) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(Hugging Face tensor name, shape as (rows, cols)) for every tensor the model reads, in order."""
    h, ffn, d = config.hidden_size, config.intermediate_size, config.head_dim
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    shapes = {"model.embed_tokens.weight": (config.vocab_size, h), "model.norm.weight": (h,)}
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, h)
    yield from shapes.items()
    shapes = {}
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        shapes |= {
            f"{p}.input_layernorm.weight": (h,), f"{p}.post_attention_layernorm.weight": (h,),
            f"{p}.self_attn.q_proj.weight": (q, h), f"{p}.self_attn.k_proj.weight": (kv, h),
            f"{p}.self_attn.v_proj.weight": (kv, h), f"{p}.self_attn.o_proj.weight": (h, q),
            f"{p}.mlp.gate_proj.weight": (ffn, h), f"{p}.mlp.up_proj.weight": (ffn, h),
            f"{p}.mlp.down_proj.weight": (h, ffn),
        }
        if config.attention_bias:
            shapes |= {f"{p}.self_attn.q_proj.bias": (q,), f"{p}.self_attn.k_proj.bias": (kv,),
                       f"{p}.self_attn.v_proj.bias": (kv,)}
        yield from shapes.items()
        shapes = {}


def check_source_shapes(where: object, config: LlamaConfig, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every tensor the model needs is in ``shapes`` (name -> shape) with the shape it needs."""
    check_tensors(where, expected_tensors(config), shapes)


def check_tensors(where: object, expected, shapes: dict[str, tuple[int, ...]]) -> None:
    """Each ``(name, shape)`` of ``expected`` is in ``shapes`` with that shape."""
    for name, shape in expected:
        got = shapes.get(name)
        if got is None:
            raise ModelSourceError(f"{where} lacks tensor {name}, which the model needs; the file is incomplete")
        if tuple(got) != shape:
            raise ModelSourceError(f"{where}: tensor {name} has shape {list(got)} but the model's settings need "
                                   f"{list(shape)}; the file is inconsistent")
