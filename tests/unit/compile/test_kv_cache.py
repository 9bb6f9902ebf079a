"""Which dtype the KV cache gets per target, and what the manifest's memory figures make of it."""

from __future__ import annotations

import pytest
import tvm

from edge_os.compile.kv_cache import default_kv_dtype, kv_cache_factory, resolve_kv_dtype
from edge_os.errors import InputError
from edge_os.models.llama.config import LlamaConfig
from edge_os.targets import load_target
from tests.tiny_model import tiny_config


def _x86(mcpu: str) -> tvm.target.Target:
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "mtriple": "x86_64-linux-gnu"})


@pytest.mark.parametrize("target,dtype", [
    (_x86("znver3"), "float16"),  # F16C: vcvtph2ps widens 8 halves at once
    (_x86("sapphirerapids"), "float16"),
    (_x86("x86-64"), "float32"),  # baseline x86-64 has no F16C: halves would be converted one by one
    (load_target("rpi5").tvm(), "float16"),
    (load_target("android-arm64").tvm(), "float16"),
    (load_target("jetson-orin").tvm(), "float32"),  # GPU kernels are not checked in float16 here
])
def test_default_kv_dtype_per_target(target, dtype):
    assert default_kv_dtype(target) == dtype


def test_an_explicit_kv_dtype_wins_and_a_wrong_one_is_refused():
    assert resolve_kv_dtype("float32", _x86("znver3")) == "float32"
    assert resolve_kv_dtype("float16", _x86("x86-64")) == "float16"
    assert kv_cache_factory(_x86("znver3")).dtype == "float16"
    with pytest.raises(InputError, match="kv_dtype"):
        resolve_kv_dtype("bfloat16", _x86("znver3"))


def test_kv_bytes_per_token_counts_two_bytes_for_float16():
    config = LlamaConfig.from_json(tiny_config())  # 2 layers, 2 KV heads of 16
    assert config.kv_bytes_per_token("float32") == 2 * 2 * 2 * 16 * 4
    assert config.kv_bytes_per_token("float16") == 2 * 2 * 2 * 16 * 2
