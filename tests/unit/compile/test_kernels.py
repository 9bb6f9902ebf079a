"""Fast kernels against the numpy oracle (``edge_os.quantize.reference``), on tiny shapes.

Every kernel family that accepts this machine's CPU is checked for every weight format and scale
dtype, for one activation row (decode), batches of 2 to 9, 17 and 64 rows (batched decode and
prefill chunks, whose integer kernels unpack each block of weights once per part of the rows) and
300 (past the largest call the integer kernels take: the FP32 prefill path). On an AVX-512 machine
the AVX2 build runs too: its batches take the other way through the parts (a loop, not unrolled).
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm

import edge_os.compile.kernels.library  # noqa: F401
from edge_os.compile.kernels import families, select_kernels
from edge_os.compile.kernels.features import arch, has
from edge_os.compile.kernels.matmul_fp32 import ROUNDED_BITS_ATTR, ROUNDED_ROWS_ATTR
from edge_os.quantize import reference
from edge_os.quantize.formats import FORMATS
from edge_os.quantize.tir import KERNEL_ATTR, matmul_kernel
from tests.gguf_craft import crafted_weight

HOST = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
N, K = 48, 256  # three 16-row prefill tiles, four 64-value spans of int4, one K-quant super-block
CASES = [(fmt, sd) for fmt in FORMATS for sd in ("float32", "float16") if FORMATS[fmt].quantized or sd == "float32"]


def _host_builders():
    builders = families(HOST)
    if not builders:
        pytest.skip(f"no kernel family for this CPU ({HOST})")
    return builders


def _build(builder, fmt: str, scale_dtype: str, activations: str, k: int = K, target: tvm.target.Target = HOST):
    """The compiled kernel, the row count below which it rounds activations, and to how many bits."""
    info = {"op": "matmul", "format": fmt, "n": N, "k": k, "scale_dtype": scale_dtype, "activations": activations}
    func = builder(info, target)
    assert func is not None
    rows, bits = int(func.attrs.get(ROUNDED_ROWS_ATTR, 0)), int(func.attrs.get(ROUNDED_BITS_ATTR, 0))
    kernel = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=target)["main"]
    return kernel, rows, bits


def _bound(x: np.ndarray, dense: np.ndarray, rounded_bits: int) -> np.ndarray:
    """Allowed |error|: float rounding, plus with rounded activations half a rounding step of
    each activation (max|x_g| / (2**bits - 2)) times the group's |W| sum."""
    bound = 1e-5 * (np.abs(x) @ np.abs(dense).T) + 1e-6
    if rounded_bits:
        m, groups = x.shape[0], x.shape[1] // 32
        x_step = np.abs(x).reshape(m, groups, 32).max(-1) / (2**rounded_bits - 2)
        bound += x_step @ np.abs(dense).reshape(N, groups, 32).sum(-1).T
    return bound


def _weight(fmt: str, scale_dtype: str, rng) -> reference.QuantizedWeight:
    return crafted_weight(fmt, N, K, rng, scale_dtype)


@pytest.mark.parametrize("activations", ["float32", "int16", "int8"])
@pytest.mark.parametrize("fmt,scale_dtype", CASES)
def test_matmul_matches_the_numpy_oracle(fmt, scale_dtype, activations):
    rng = np.random.default_rng(7)
    weight = _weight(fmt, scale_dtype, rng)
    dense = weight.dequantize().astype(np.float64)
    for family, builder in _host_builders():
        kernel, rounded_rows, bits = _build(builder, fmt, scale_dtype, activations)
        assert bits in ({0} if activations == "float32" else {0, int(activations[3:])})
        for m in (1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 64, 300):
            x = rng.standard_normal((m, K)).astype(np.float32)
            y = tvm.runtime.tensor(np.full((m, N), np.nan, np.float32))
            kernel(tvm.runtime.tensor(x), *[tvm.runtime.tensor(a) for a in weight.arrays.values()], y)
            expected = x.astype(np.float64) @ dense.T
            bound = _bound(x, dense, bits if m < rounded_rows else 0)
            assert np.all(np.abs(y.numpy() - expected) <= bound), f"{family} {fmt} m={m}"


@pytest.mark.parametrize("activations", ["int16", "int8"])
@pytest.mark.parametrize("fmt", ["q4", "q4_1", "q4_k", "q5_0", "q5_1", "q5_k", "q6_k", "q8", "q8_m"])
def test_each_row_of_a_batch_gets_the_result_it_gets_alone(fmt, activations):
    """The batched decode kernels change which rows share a weight block, not a row's arithmetic:
    so a batch's greedy tokens are those of its streams run one at a time."""
    rng = np.random.default_rng(11)
    weight = _weight(fmt, "float16", rng)
    arrays = [tvm.runtime.tensor(a) for a in weight.arrays.values()]
    for family, builder in _host_builders():
        kernel, rounded_rows, _ = _build(builder, fmt, "float16", activations)
        x = rng.standard_normal((max(rounded_rows - 1, 0), K)).astype(np.float32)
        alone = []
        for row in x:
            y = tvm.runtime.tensor(np.zeros((1, N), np.float32))
            kernel(tvm.runtime.tensor(row[None]), *arrays, y)
            alone.append(y.numpy()[0])
        for m in range(2, len(x) + 1):
            y = tvm.runtime.tensor(np.zeros((m, N), np.float32))
            kernel(tvm.runtime.tensor(x[:m]), *arrays, y)
            np.testing.assert_array_equal(y.numpy(), np.stack(alone[:m]), err_msg=f"{family} {fmt} m={m}")


def _rounded(x: np.ndarray, bits: int) -> np.ndarray:
    """x as the kernels round it: per group of 32, to whole multiples of max|x_g| / (2**(bits-1) - 1)
    (in float32, as they compute it)."""
    groups = x.reshape(x.shape[0], -1, 32)
    peak = np.abs(groups).max(-1, keepdims=True)
    top = np.float32(2 ** (bits - 1) - 1)
    inv = np.where(peak > 0, top / np.where(peak > 0, peak, 1), 0).astype(np.float32)
    return (np.round(groups * inv) * (peak / top)).reshape(x.shape).astype(np.float64)


@pytest.mark.parametrize("activations", ["int16", "int8"])
@pytest.mark.parametrize("fmt", ["q4", "q4_1", "q4_k", "q5_0", "q5_1", "q5_k", "q6_k", "q8", "q8_m"])
def test_rounded_activations_are_multiplied_as_rounded(fmt, activations):
    """With rounded activations the only error is the rounding: the result is W . x_rounded to float
    rounding. A zero point's or minimum's term takes the sum of the rounded activations; with the
    sum of x it added m * (sum x - sum x_rounded), which doubled int8's error on q4_1 (SmolLM2's
    decode perplexity 8.18 -> 8.75 instead of 8.19)."""
    rng = np.random.default_rng(17)
    weight = _weight(fmt, "float16", rng)
    dense = weight.dequantize().astype(np.float64)
    arrays = [tvm.runtime.tensor(a) for a in weight.arrays.values()]
    for family, builder in _host_builders():
        kernel, rounded_rows, bits = _build(builder, fmt, "float16", activations)
        assert bits == int(activations[3:]), family
        for m in (1, 4, rounded_rows - 1):
            x = (rng.standard_normal((m, K)) * rng.uniform(0.1, 10, (m, K // 32)).repeat(32, 1)).astype(np.float32)
            y = tvm.runtime.tensor(np.full((m, N), np.nan, np.float32))
            kernel(tvm.runtime.tensor(x), *arrays, y)
            rounded = _rounded(x, bits)
            bound = 1e-5 * (np.abs(rounded) @ np.abs(dense).T) + 1e-6
            assert np.all(np.abs(y.numpy() - rounded @ dense.T) <= bound), f"{family} {fmt} m={m}"


@pytest.mark.parametrize("activations", ["int16", "int8"])
@pytest.mark.parametrize("fmt", ["q4", "q4_1", "q5_0", "q5_1", "q8"])
def test_an_odd_number_of_spans_ends_on_a_span_alone(fmt, activations):
    """k = 192: three 64-value spans, six groups; with AVX-512 the int4 decode path takes two spans
    per register and the third alone, and q8 four groups at a time and the last two alone, which
    k = 256 never reaches."""
    rng = np.random.default_rng(5)
    k = 192
    weight = crafted_weight(fmt, N, k, rng, "float16")
    dense = weight.dequantize().astype(np.float64)
    arrays = [tvm.runtime.tensor(a) for a in weight.arrays.values()]
    for family, builder in _host_builders():
        kernel, rounded_rows, bits = _build(builder, fmt, "float16", activations, k)
        for m in (1, 4):
            x = rng.standard_normal((m, k)).astype(np.float32)
            y = tvm.runtime.tensor(np.full((m, N), np.nan, np.float32))
            kernel(tvm.runtime.tensor(x), *arrays, y)
            bound = _bound(x, dense, bits if m < rounded_rows else 0)
            assert np.all(np.abs(y.numpy() - x.astype(np.float64) @ dense.T) <= bound), f"{family} {fmt} m={m}"


@pytest.mark.parametrize("activations", ["int16", "int8"])
@pytest.mark.parametrize("fmt", ["q4_1", "q5_0", "q6_k", "q8"])
def test_the_avx2_build_runs_here_and_batches_like_one_row(fmt, activations):
    """The kernels built for AVX2 alone (16 vector registers: a batch's parts are a loop over up
    to 16 rows), run on this CPU: within the oracle's bound, and each row of a batch as alone."""
    from edge_os.compile.kernels import x86_avx2

    if not has(HOST, "avx2", "fma"):
        pytest.skip(f"this CPU ({HOST}) cannot run AVX2 code")
    haswell = tvm.target.Target({"kind": "llvm", "mcpu": "haswell"})
    kernel, _, bits = _build(x86_avx2.build, fmt, "float16", activations, target=haswell)
    rng = np.random.default_rng(3)
    weight = _weight(fmt, "float16", rng)
    dense = weight.dequantize().astype(np.float64)
    arrays = [tvm.runtime.tensor(a) for a in weight.arrays.values()]
    x = rng.standard_normal((33, K)).astype(np.float32)
    alone = []
    for row in x:
        y = tvm.runtime.tensor(np.zeros((1, N), np.float32))
        kernel(tvm.runtime.tensor(row[None]), *arrays, y)
        alone.append(y.numpy()[0])
    for m in (2, 5, 16, 17, 33):
        y = tvm.runtime.tensor(np.full((m, N), np.nan, np.float32))
        kernel(tvm.runtime.tensor(x[:m]), *arrays, y)
        assert np.all(np.abs(y.numpy() - x[:m].astype(np.float64) @ dense.T) <= _bound(x[:m], dense, bits)), m
        np.testing.assert_array_equal(y.numpy(), np.stack(alone[:m]), err_msg=f"{fmt} m={m}")


def test_avx512_targets_get_the_wide_int4_decode_path():
    """Built (not run) for Zen 4 and Haswell: only the AVX-512 one multiplies in 512-bit registers
    (``vpdpwssd`` on zmm, VNNI fusing ``vpmaddwd`` with its addition)."""
    from edge_os.compile.kernels import x86_avx2

    info = {"op": "matmul", "format": "q4_1", "n": N, "k": 192, "scale_dtype": "float32", "activations": "int16"}
    for mcpu, wide in (("znver4", True), ("haswell", False)):
        target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
        func = x86_avx2.build(info, target).with_attr("global_symbol", "main")
        asm = tvm.compile(tvm.IRModule({"main": func}), target=target).mod.inspect_source("asm")
        assert ("vpdpwssd\t%zmm" in asm) == wide, mcpu
        assert ("vpmaddwd" in asm or "vpdpwssd" in asm), mcpu


def test_decode_matmuls_prefetch_their_weights_into_l2():
    """``prefetcht1``, not ``prefetcht0``: a prefetch into L1 holds one of the core's few L1 miss
    buffers until DRAM answers, which capped a core's weight stream at ~9 GB/s on Zen 4."""
    from edge_os.compile.kernels import x86_avx2

    for fmt in ("q4_1", "q8"):
        info = {"op": "matmul", "format": fmt, "n": N, "k": 192, "scale_dtype": "float16", "activations": "int16"}
        for mcpu in ("znver4", "haswell"):
            target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
            func = x86_avx2.build(info, target).with_attr("global_symbol", "main")
            asm = tvm.compile(tvm.IRModule({"main": func}), target=target).mod.inspect_source("asm")
            assert "prefetcht1" in asm and "prefetcht0" not in asm, (fmt, mcpu)


def test_the_pipeline_swaps_tagged_kernels_for_fast_ones():
    _host_builders()
    ref = matmul_kernel(FORMATS["q4_1"], N, K)
    mod = tvm.IRModule({"q4_1_matmul": ref.with_attr("global_symbol", "q4_1_matmul")})
    fast = select_kernels(mod, HOST)["q4_1_matmul"]
    assert fast.attrs["edge_os.kernel_impl"]
    assert dict(fast.attrs[KERNEL_ATTR])["format"] == "q4_1"


def test_features_follow_the_target_not_the_machine():
    rpi5 = tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76",
                              "mattr": ["+neon", "+dotprod"]})
    assert arch(rpi5) == "aarch64" and has(rpi5, "neon", "dotprod") and not has(rpi5, "avx2")
    assert not has(tvm.target.Target({"kind": "llvm", "mcpu": "znver3", "mattr": ["-avx2"]}), "avx2")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if FORMATS[f].quantized])
def test_every_quantized_format_decodes_with_integer_activations_on_avx2_and_neon(fmt):
    """No format falls back to float32 decode when int16 / int8 activations are asked for (the
    kernels are only built here, for targets of both families, not run)."""
    from edge_os.compile.kernels import arm_neon, x86_avx2

    targets = {x86_avx2: tvm.target.Target({"kind": "llvm", "mcpu": "haswell"}),
               arm_neon: tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76",
                                            "mattr": ["+neon", "+dotprod"]})}
    for family, target in targets.items():
        for activations, bits in (("int16", 16), ("int8", 8)):
            info = {"op": "matmul", "format": fmt, "n": N, "k": K, "scale_dtype": "float32", "activations": activations}
            assert int(family.build(info, target).attrs[ROUNDED_BITS_ATTR]) == bits, (family.__name__, activations)


@pytest.mark.parametrize("activations", ["int16", "int8"])
def test_the_largest_q6_k_products_do_not_overflow_the_integer_sums(activations):
    """q6_k's largest weight, |(q - 32) * sc| = 32 * 128, times full-scale int16 activations, over a
    group of 32: 2**32, twice what int32 holds. Every block at that extreme, every activation 1.0."""
    block = np.zeros(210, np.uint8)  # q = 0 everywhere: q - 32 = -32
    block[192:208] = np.full(16, -128, np.int8).view(np.uint8)  # sub-block scales
    block[208:210] = np.array([1.0], np.float16).view(np.uint8)  # d
    weight = reference.from_gguf_blocks(np.tile(block, (N, K // 256)), "Q6_K", N, K)
    dense = weight.dequantize().astype(np.float64)
    assert np.all(dense == 4096.0)
    x = np.ones((1, K), np.float32)
    for family, builder in _host_builders():
        kernel, _, _ = _build(builder, "q6_k", "float16", activations)
        y = tvm.runtime.tensor(np.zeros((1, N), np.float32))
        kernel(tvm.runtime.tensor(x), *[tvm.runtime.tensor(a) for a in weight.arrays.values()], y)
        np.testing.assert_allclose(y.numpy(), x @ dense.T, rtol=1e-5, err_msg=family)


@pytest.mark.parametrize("fmt", ["q4_1", "q5_0", "q8"])
def test_int8_activations_take_vnni_dot_products_with_the_same_results(fmt):
    """Where the target has VNNI, int8 activations' byte products and their sums into int32 are
    one ``vpdpbusd`` (was ``vpmaddubsw`` + ``vpmaddwd``), and with AVX-512 int4 weights take two
    spans per 512-bit register. No int16 sum saturated before, so the integers are the same: the
    results equal Haswell's build (no VNNI) to the bit, and to float rounding where two spans'
    terms are added before the accumulator (int4). At 1 and 4 rows; on a CPU without VNNI both
    builds take the old instructions. Which CPUs get which: Zen 4 AVX512-VNNI (512-bit for int4),
    Alder Lake AVX-VNNI (VEX-encoded, 256-bit), Skylake-SP's AVX-512 has no VNNI."""
    from edge_os.compile.kernels import x86_avx2

    info = {"op": "matmul", "format": fmt, "n": N, "k": K, "scale_dtype": "float16", "activations": "int8"}
    paired = FORMATS[fmt].bits == 4
    for mcpu, vnni, wide in (("znver4", True, paired), ("alderlake", True, False), ("skylake-avx512", False, False)):
        target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
        asm = tvm.compile(tvm.IRModule({"main": x86_avx2.build(info, target).with_attr("global_symbol", "main")}),
                          target=target).mod.inspect_source("asm")
        assert ("vpdpbusd" in asm) == vnni and ("vpmaddubsw" in asm) != vnni, mcpu
        assert ("vpdpbusd\t%zmm" in asm) == wide, mcpu
    if not has(HOST, "avx2", "fma"):
        pytest.skip(f"this CPU ({HOST}) cannot run AVX2 code")
    haswell = tvm.target.Target({"kind": "llvm", "mcpu": "haswell"})
    here, _, _ = _build(x86_avx2.build, fmt, "float16", "int8")
    old, _, _ = _build(x86_avx2.build, fmt, "float16", "int8", target=haswell)
    rng = np.random.default_rng(13)
    arrays = [tvm.runtime.tensor(a) for a in _weight(fmt, "float16", rng).arrays.values()]
    for m in (1, 4):
        x = tvm.runtime.tensor(rng.standard_normal((m, K)).astype(np.float32))
        results = []
        for kernel in (here, old):
            y = tvm.runtime.tensor(np.full((m, N), np.nan, np.float32))
            kernel(x, *arrays, y)
            results.append(y.numpy())
        if paired:
            np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5, err_msg=f"{fmt} m={m}")
        else:
            np.testing.assert_array_equal(results[0], results[1], err_msg=f"{fmt} m={m}")
