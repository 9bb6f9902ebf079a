"""GGUFs with K-quant and Q5_0 / Q5_1 blocks, laid out as llama.cpp's Q4_K_M and Q5_K_M write
them, are packed with every block kept bit-exactly and run as an independent forward pass over the
file's values says.

Q4_K_M-like: Q/K are Q5_0 and V Q8_0 (what ``llama-quantize`` writes for Q4_K_M when a row is not
a multiple of 256 values), O and gate/up Q4_K, down Q6_K. Q5_K_M-like: Q/K/V Q5_1 (its fallback
for Q5_K), O and gate/up Q5_K, down Q6_K. The crafted K-quant blocks hold every quant bit pattern.

Decode (and on x86 prefill, which takes the same integer kernels) runs with int16 activations on
the Q4_K_M-like file and float32 on the Q5_K_M-like one:
this random model amplifies int16 rounding through asymmetric Q/K/V (Q4_1 there as much as Q5_1)
to ~3e-3 of the logit scale, so the exact path is what is checked end to end; the integer kernels
of every format are checked against the oracle with a derived bound in ``test_kernels``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_os.package.manifest import Manifest
from edge_os.package.pack import PackOptions, pack
from edge_os.runtime.engine import Engine
from tests import reference_llama
from tests.integration.test_cli import edge_os
from tests.integration.test_engine_tiny import package_weights
from tests.integration.test_gguf_import import _file_weights
from tests.tiny_model import tiny_config, write_gguf

CONFIG = tiny_config(hidden_size=256, intermediate_size=512)
Q4_K_M_LIKE = {"q_proj.weight": "Q5_0", "k_proj.weight": "Q5_0", "v_proj.weight": "Q8_0",
               "o_proj.weight": "Q4_K", "gate_proj.weight": "Q4_K", "up_proj.weight": "Q4_K",
               "down_proj.weight": "Q6_K"}

Q5_K_M_LIKE = {"q_proj.weight": "Q5_1", "k_proj.weight": "Q5_1", "v_proj.weight": "Q5_1",
               "o_proj.weight": "Q5_K", "gate_proj.weight": "Q5_K", "up_proj.weight": "Q5_K",
               "down_proj.weight": "Q6_K"}
# the layout -> the package format of (fused) qkv, o, gate_up, down
EXPECTED = {"Q4_K_M": ("q8", "q4_k", "q4_k", "q6_k"),  # Q5_0 + Q8_0 fused exactly as q8
            "Q5_K_M": ("q5_1", "q5_k", "q5_k", "q6_k")}


@pytest.fixture(scope="module", params=["Q4_K_M", "Q5_K_M"])
def kquant_gguf(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / f"{request.param}.gguf"
    write_gguf(path, seed=9, config=CONFIG, types={"Q4_K_M": Q4_K_M_LIKE, "Q5_K_M": Q5_K_M_LIKE}[request.param])
    return request.param, path


def test_k_quant_blocks_are_kept_exactly_and_run(kquant_gguf, tmp_path):
    layout, kquant_gguf = kquant_gguf
    activations = "int16" if layout == "Q4_K_M" else "float32"
    package = pack(PackOptions(kquant_gguf, tmp_path / "pkg", quant="auto", progress=False, kv_dtype="float32",
                               activations=activations))
    quantization = Manifest.read(package).quantization
    assert "not_kept" not in quantization
    formats = quantization["tensors"]
    names = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
    assert tuple(formats[f"model.layers.0.{name}.weight"] for name in names) == EXPECTED[layout]
    in_package = package_weights(package)
    from_file = _file_weights(kquant_gguf)  # same head counts as the tiny config
    assert set(from_file) == set(in_package)
    for name, w in from_file.items():
        np.testing.assert_array_equal(in_package[name], w, err_msg=name)

    engine = Engine.load(package, context_tokens=128)
    ids = [5, 70, 100, 33, 2, 250, 9, 17, 200, 3]
    expected = reference_llama.forward(CONFIG, from_file, ids)
    engine.runner.add_sequence(0)
    prefill = engine.runner.prefill(0, ids, all_logits=True)  # 10 rows a call
    engine.runner.add_sequence(1)
    decoded = [engine.runner.prefill(1, ids[:1])]
    for token in ids[1:]:  # one token at a time: the matrix-vector kernels
        decoded.append(engine.runner.decode([1], [token])[0])
    for way, logits in (("prefill", prefill), ("decode", np.stack(decoded))):
        if activations == "float32":
            np.testing.assert_allclose(logits, expected, atol=2e-4, rtol=1e-3, err_msg=way)
        else:  # rounded activations: on x86 in calls of every size up to 256 rows
            assert np.abs(logits - expected).max() < 2e-3 * np.abs(expected).max(), way


def test_a_type_that_cannot_be_kept_is_named_by_pack_and_in_the_manifest(tmp_path):
    source = tmp_path / "q2_k.gguf"
    write_gguf(source, seed=2, config=CONFIG, types=Q4_K_M_LIKE | {"o_proj.weight": "Q2_K"})
    result = edge_os("pack", source, "--out", tmp_path / "pkg", "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 tensor(s) not kept exactly: Q2_K -> q4" in result.stderr
    not_kept = json.loads((tmp_path / "pkg" / "manifest.json").read_text())["quantization"]["not_kept"]
    assert not_kept == {f"model.layers.{i}.self_attn.o_proj.weight": "Q2_K -> q4" for i in range(2)}
