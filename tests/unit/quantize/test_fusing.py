"""Fusing Q/K/V and gate/up keeps carried GGUF blocks exact when their formats allow it."""

from __future__ import annotations

import numpy as np

from edge_os.models.llama.weights import Fuser
from edge_os.quantize.reference import from_gguf_blocks
from tests.gguf_craft import random_gguf_blocks

RNG = np.random.default_rng(3)


def _carried(ggml_type: str, n: int, k: int = 64):
    return from_gguf_blocks(random_gguf_blocks(ggml_type, n, k, RNG), ggml_type, n, k)


def _fuse(parts: dict):
    fuser = Fuser("q4", "float16")
    out = []
    for name, value in parts.items():
        out += list(fuser.push(f"model.layers.0.self_attn.{name}.weight", value))
    fuser.finish()
    (name, fused), = out
    assert name == "model.layers.0.self_attn.qkv_proj.weight"
    return fuser, fused


def test_q5_1_query_and_key_next_to_a_q8_0_value_fuse_exactly_as_q8_m():
    """What llama.cpp's Q5_K_M writes when rows are not a multiple of 256 values."""
    parts = {"q_proj": _carried("Q5_1", 4), "k_proj": _carried("Q5_1", 2), "v_proj": _carried("Q8_0", 2)}
    fuser, fused = _fuse(parts)
    assert fused.fmt.name == "q8_m" and not fuser.requantized
    expected = np.concatenate([p.dequantize() for p in parts.values()])
    np.testing.assert_array_equal(fused.dequantize(), expected)


def test_symmetric_parts_still_fuse_as_q8_and_mixed_ones_as_q8_m():
    parts = {"q_proj": _carried("Q5_0", 4), "k_proj": _carried("Q5_0", 2), "v_proj": _carried("Q8_0", 2)}
    assert _fuse(parts)[1].fmt.name == "q8"
    parts = {"q_proj": _carried("Q4_1", 4), "k_proj": _carried("Q5_0", 2), "v_proj": _carried("Q5_1", 2)}
    fuser, fused = _fuse(parts)
    assert fused.fmt.name == "q8_m" and not fuser.requantized
    np.testing.assert_array_equal(fused.dequantize(), np.concatenate([p.dequantize() for p in parts.values()]))


def test_parts_no_int8_format_holds_are_re_quantized_and_named():
    parts = {"q_proj": _carried("Q4_K", 4, 256), "k_proj": _carried("Q4_K", 2, 256), "v_proj": _carried("Q8_0", 2, 256)}
    fuser, fused = _fuse(parts)
    assert fused.fmt.name == "q4"
    assert fuser.requantized == {"model.layers.0.self_attn.qkv_proj.weight": ["q4_k", "q8"]}
