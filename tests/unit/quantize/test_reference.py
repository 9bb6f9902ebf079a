"""The numpy reference of the weight formats (the oracle every kernel is checked against)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from edge_os.quantize.reference import as_q8, as_q8_m, from_gguf_blocks, pack_int4, quantize, unpack_int4
from tests.gguf_craft import random_gguf_blocks

RNG = np.random.default_rng(0)


def test_int4_packing_round_trips():
    q = RNG.integers(0, 16, (5, 64)).astype(np.uint8)
    packed = pack_int4(q)
    assert packed.dtype == np.uint32 and packed.shape == (5, 8)
    np.testing.assert_array_equal(unpack_int4(packed), q)
    # element 8j+i lives in bits 4i of word j
    assert (packed[0, 0] >> 4) & 0xF == q[0, 1]


@pytest.mark.parametrize("fmt,bound", [("q4", 1 / 7.5), ("q4_1", 1 / 14), ("q8", 1 / 126), ("f32", 0)])
def test_rounding_error_is_within_half_a_step(fmt, bound):
    w = RNG.standard_normal((16, 128)).astype(np.float32)
    err = np.abs(quantize(w, fmt).dequantize() - w).reshape(16, 4, 32)
    span = np.abs(w).reshape(16, 4, 32).max(axis=2, keepdims=True)
    if fmt == "q4_1":
        g = w.reshape(16, 4, 32)
        span = g.max(axis=2, keepdims=True) - g.min(axis=2, keepdims=True)
    assert np.all(err <= span * bound + 1e-6)


def test_f16_scales_are_rounded_before_use():
    w = RNG.standard_normal((4, 64)).astype(np.float32)
    qw = quantize(w, "q4", "float16")
    assert qw.arrays["scale"].dtype == np.float16
    assert np.abs(qw.dequantize() - w).max() < 0.35


def test_zero_groups_stay_zero():
    w = np.zeros((2, 32), np.float32)
    for fmt in ("q4", "q4_1", "q8"):
        np.testing.assert_array_equal(quantize(w, fmt).dequantize(), w)


@pytest.mark.parametrize("ggml_type", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_gguf_blocks_are_carried_over_exactly(ggml_type):
    w = RNG.standard_normal((6, 96)).astype(np.float32)
    kind = getattr(gguf.GGMLQuantizationType, ggml_type)
    blocks = gguf.quants.quantize(w, kind)
    carried = from_gguf_blocks(blocks, ggml_type, 6, 96)
    np.testing.assert_array_equal(carried.dequantize(), gguf.quants.dequantize(blocks, kind))


def test_row_permutation_keeps_blocks_exact():
    w = RNG.standard_normal((8, 64)).astype(np.float32)
    qw = quantize(w, "q4_1")
    rows = np.array([3, 1, 7, 0, 2, 6, 5, 4])
    np.testing.assert_array_equal(qw.take_rows(rows).dequantize(), qw.dequantize()[rows])


@pytest.mark.parametrize("ggml_type", ["Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"])
def test_crafted_gguf_blocks_are_carried_over_bit_exactly(ggml_type):
    """Random block bytes (every quant and sub-scale bit pattern) against gguf-py's dequantization."""
    kind = getattr(gguf.GGMLQuantizationType, ggml_type)
    raw = random_gguf_blocks(ggml_type, 5, 512, RNG)
    carried = from_gguf_blocks(raw, ggml_type, 5, 512)
    expected = gguf.quants.dequantize(raw, kind).reshape(5, 512)
    np.testing.assert_array_equal(carried.dequantize(), expected)
    rows = np.array([4, 0, 2])
    np.testing.assert_array_equal(carried.take_rows(rows).dequantize(), expected[rows])


def test_k_quant_storage_costs_what_the_file_does():
    """Q6_K keeps its 6.5625 bits per value; Q4_K 4.625 and Q5_K 5.625 (their 6-bit sub-scales as
    bytes, 1/8 bit more than the file)."""
    for ggml_type, bits in (("Q6_K", 6.5625), ("Q4_K", 4.625), ("Q5_K", 5.625), ("Q5_0", 5.5), ("Q5_1", 6.0)):
        qw = from_gguf_blocks(random_gguf_blocks(ggml_type, 2, 256, RNG), ggml_type, 2, 256)
        assert sum(a.nbytes for a in qw.arrays.values()) * 8 / (2 * 256) == bits


@pytest.mark.parametrize("ggml_type", ["Q4_0", "Q5_0"])
def test_q4_and_q5_0_become_q8_exactly(ggml_type):
    qw = from_gguf_blocks(random_gguf_blocks(ggml_type, 3, 64, RNG), ggml_type, 3, 64)
    promoted = as_q8(qw)
    assert promoted.fmt.name == "q8"
    np.testing.assert_array_equal(promoted.dequantize(), qw.dequantize())
    for asymmetric in ("Q4_1", "Q5_1"):  # a group minimum is no q8 value
        assert as_q8(from_gguf_blocks(random_gguf_blocks(asymmetric, 3, 64, RNG), asymmetric, 3, 64)) is None


def test_q5_1_and_q8_become_q8_m_exactly():
    """Q5_K_M's fallbacks (Q/K Q5_1, V Q8_0) fuse into one q8_m tensor without rounding."""
    q5_1 = from_gguf_blocks(random_gguf_blocks("Q5_1", 3, 64, RNG), "Q5_1", 3, 64)
    q8 = from_gguf_blocks(random_gguf_blocks("Q8_0", 2, 64, RNG), "Q8_0", 2, 64)
    for qw in (q5_1, q8):
        promoted = as_q8_m(qw)
        assert promoted.fmt.name == "q8_m"
        np.testing.assert_array_equal(promoted.dequantize(), qw.dequantize())
    for other in ("Q4_0", "Q4_1", "Q5_0"):  # as q8, or q4_1's nibbles with its minimum
        qw = from_gguf_blocks(random_gguf_blocks(other, 3, 64, RNG), other, 3, 64)
        np.testing.assert_array_equal(as_q8_m(qw).dequantize(), qw.dequantize())
    assert as_q8_m(from_gguf_blocks(random_gguf_blocks("Q4_K", 3, 256, RNG), "Q4_K", 3, 256)) is None
