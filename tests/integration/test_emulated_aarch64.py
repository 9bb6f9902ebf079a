"""aarch64 packages run under ``edge-os emulate`` (qemu-user): the NEON kernels against the numpy
oracle, and a tiny model packed for the Raspberry Pi 5 answering as the host package does.

Slow: the first use assembles the aarch64 userland and downloads the bundle's wheels (into a
temporary EDGE_OS_HOME), and emulated code runs several times slower than native."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tvm

import edge_os.compile.kernels.library  # noqa: F401
from edge_os.compile.kernels import neon_dot
from edge_os.compile.kernels.arm_neon import build as neon_build
from edge_os.compile.kernels.matmul_fp32 import ROUNDED_BITS_ATTR, ROUNDED_ROWS_ATTR
from edge_os.compile.kernels.weights import WeightLayout
from edge_os.deploy.emulate import Emulator
from edge_os.targets import load_target
from tests.integration.test_cli import edge_os
from tests.unit.compile.test_kernels import CASES, K, N, _bound, _rounded, _weight

pytestmark = pytest.mark.slow
RPI5 = load_target("rpi5")
RUNNER = Path(__file__).with_name("aarch64_kernel_runner.py")


@pytest.fixture(scope="module")
def emulation_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("emulation-home")


@pytest.fixture(scope="module")
def emulator(emulation_home) -> Emulator:
    return Emulator(RPI5, emulation_home)


def test_neon_decode_kernels_match_the_numpy_oracle_under_emulation(emulator, tmp_path):
    target = RPI5.tvm()
    rng = np.random.default_rng(11)
    funcs, inputs, expected = {}, {}, {}
    for fmt, scale_dtype in CASES:
        for activations in ("float32", "int16", "int8"):
            func = neon_build({"op": "matmul", "format": fmt, "n": N, "k": K, "scale_dtype": scale_dtype,
                               "activations": activations}, target)
            bits = int(func.attrs.get(ROUNDED_BITS_ATTR, 0))
            rows = int(func.attrs.get(ROUNDED_ROWS_ATTR, 0))
            integer_path = neon_dot.supports(WeightLayout.from_info({"format": fmt, "n": N, "k": K}))
            assert bits == (0 if not integer_path else {"float32": 0, "int16": 16, "int8": 8}[activations])
            weight = _weight(fmt, scale_dtype, rng)
            dense = weight.dequantize().astype(np.float64)
            kernel = f"k_{fmt}_{scale_dtype}_{activations}"
            funcs[kernel] = func.with_attr("global_symbol", kernel)
            arrays = list(weight.arrays.values())
            for m in (1, 3, 64):
                call = f"{kernel}__{m}"
                x = rng.standard_normal((m, K)).astype(np.float32)
                inputs |= {f"{call}.x": x, f"{call}.n": np.array(N), f"{call}.count": np.array(len(arrays))}
                inputs |= {f"{call}.w{i}": a for i, a in enumerate(arrays)}
                if bits and m < rows:  # only the rounding's error (test_rounded_activations_are_multiplied_as_rounded)
                    rounded = _rounded(x, bits)
                    expected[call] = (rounded @ dense.T, 1e-5 * (np.abs(rounded) @ np.abs(dense).T) + 1e-6)
                else:
                    expected[call] = (x.astype(np.float64) @ dense.T, _bound(x, dense, 0))
    library = tmp_path / "kernels.so"
    tvm.compile(tvm.IRModule(funcs), target=target).export_library(str(library), cc=RPI5.cross_cc)
    np.savez(tmp_path / "in.npz", **inputs)
    run = emulator.run(str(RUNNER), str(library), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"),
                       capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    assert sorted(got.files) == sorted(expected)
    for name, (want, bound) in expected.items():
        assert np.all(np.abs(got[name] - want) <= bound), name


def _generate(runner, package: Path, env: dict) -> list[int]:
    result = runner("generate", "-m", package, "--json", "--temperature", "0", "--ignore-eos", "--max-tokens", "16",
                    "What is the capital of France?", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["token_ids"]


def test_a_tiny_model_packed_for_rpi5_answers_under_emulation_as_the_host_package(
        emulator, emulation_home, tiny_hf_folder, tiny_package_factory, tmp_path):
    env = {**os.environ, "EDGE_OS_HOME": str(emulation_home)}
    package = tmp_path / "rpi5"
    packed = edge_os("pack", tiny_hf_folder, "--target", "rpi5", "--out", package, "--no-progress", env=env,
                     timeout=900)
    assert packed.returncode == 0, packed.stderr[-3000:]
    manifest = json.loads((package / "manifest.json").read_text())
    assert (manifest["target"]["name"], manifest["kv_dtype"]) == ("rpi5", "float16")
    assert manifest["quantization"]["decode_activations"] == "int16"
    elf = subprocess.run(["readelf", "-h", package / "model.so"], capture_output=True, text=True).stdout
    assert "AArch64" in elf
    host_ids = _generate(edge_os, tiny_package_factory("q4f32"), env)
    emulated = lambda *args, env: edge_os("emulate", "--target", "rpi5", "--", *args, env=env, timeout=1200)  # noqa: E731
    assert _generate(emulated, package, env) == host_ids
    refused = edge_os("generate", "-m", package, "hi", env=env)  # and the host refuses it in one line
    assert refused.returncode == 1 and "compiled for rpi5 (aarch64)" in refused.stderr



def test_smollm2_packed_for_rpi5_gives_the_host_packages_greedy_tokens_under_emulation(
        emulator, emulation_home, default_package, tmp_path):
    """The real model: 16 greedy tokens, int16 decode activations on both (pack's default)."""
    from edge_os.default_model import bundled_gguf

    env = {**os.environ, "EDGE_OS_HOME": str(emulation_home)}
    package = tmp_path / "smollm2-rpi5"
    packed = edge_os("pack", bundled_gguf(), "--target", "rpi5", "--out", package, "--no-progress", env=env,
                     timeout=1800)
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert "AArch64" in subprocess.run(["readelf", "-h", package / "model.so"], capture_output=True, text=True).stdout
    emulated = lambda *args, env: edge_os("emulate", "--target", "rpi5", "--", *args, env=env, timeout=1800)  # noqa: E731
    assert _generate(emulated, package, env) == _generate(edge_os, default_package, env)
