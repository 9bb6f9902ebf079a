"""The kernels and schedules compile for targets this machine cannot run (aarch64 devices).

``export_library`` to ``.tar`` needs no cross compiler, so CI on x86-64 checks that the NEON
kernels and the default schedule still lower for the Raspberry Pi 5 descriptor.
"""

from __future__ import annotations

import tarfile

import pytest
import tvm

import edge_os.compile.kernels.library  # noqa: F401
from edge_os.compile.kernels import families
from edge_os.compile.kernels.arm_neon import build as neon_build
from edge_os.targets import load_target
from tests.tiny_model import tiny_config

RPI5 = load_target("rpi5")


def _export(mod: tvm.ir.IRModule, target: tvm.target.Target, path) -> list[str]:
    tvm.compile(mod, target=target).export_library(str(path))
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_rpi5_gets_the_neon_family_and_not_the_x86_one():
    target = RPI5.tvm()
    assert [name for name, _ in families(target)] == ["arm_neon"]


def test_neon_matmul_kernels_compile_for_the_rpi5(tmp_path):
    target = RPI5.tvm()
    funcs = {}
    for fmt in ("q4", "q4_1", "q8", "f32"):
        func = neon_build({"op": "matmul", "format": fmt, "n": 64, "k": 128, "scale_dtype": "float32"}, target)
        funcs[f"{fmt}_matmul"] = func.with_attr("global_symbol", f"{fmt}_matmul")
    assert _export(tvm.IRModule(funcs), target, tmp_path / "kernels.tar")


@pytest.mark.slow
def test_a_tiny_llama_compiles_for_the_rpi5(tmp_path):
    from edge_os.compile.build import compile_model, resolve_tvm_target
    from edge_os.models.llama.config import LlamaConfig
    from edge_os.models.llama.model import LlamaForCausalLM

    config = LlamaConfig.from_json(tiny_config())
    formats = {f"model.layers.{i}.{name}.weight": "q4_1" for i in range(config.num_hidden_layers)
               for name in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")}
    formats["model.embed_tokens.weight"] = "q8"
    library = tmp_path / "model.tar"
    params = compile_model(LlamaForCausalLM, config, formats, "float32", resolve_tvm_target(RPI5.tvm_target), library)
    assert library.stat().st_size > 0 and params
