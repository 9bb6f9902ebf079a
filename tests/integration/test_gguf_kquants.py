"""A GGUF with K-quant and Q5_0 blocks, laid out as llama.cpp's Q4_K_M writes them, is packed with
every block kept bit-exactly and runs as an independent forward pass over the file's values says.

Q/K are Q5_0 and V Q8_0 (what ``llama-quantize`` writes for Q4_K_M when a row is not a multiple of
256 values), O and gate/up Q4_K, down Q6_K; the crafted blocks hold every quant bit pattern."""

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


@pytest.fixture(scope="module")
def kquant_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "kquants.gguf"
    write_gguf(path, seed=9, config=CONFIG, types=Q4_K_M_LIKE)
    return path


def test_k_quant_blocks_are_kept_exactly_and_run(kquant_gguf, tmp_path):
    package = pack(PackOptions(kquant_gguf, tmp_path / "pkg", quant="auto", progress=False, kv_dtype="float32"))
    quantization = Manifest.read(package).quantization
    assert "not_kept" not in quantization
    formats = quantization["tensors"]
    assert formats["model.layers.0.self_attn.qkv_proj.weight"] == "q8"  # Q5_0 + Q8_0, fused exactly
    assert formats["model.layers.0.self_attn.o_proj.weight"] == "q4_k"
    assert formats["model.layers.0.mlp.gate_up_proj.weight"] == "q4_k"
    assert formats["model.layers.0.mlp.down_proj.weight"] == "q6_k"
    in_package = package_weights(package)
    from_file = _file_weights(kquant_gguf)  # same head counts as the tiny config
    assert set(from_file) == set(in_package)
    for name, w in from_file.items():
        np.testing.assert_array_equal(in_package[name], w, err_msg=name)

    engine = Engine.load(package, context_tokens=128)
    ids = [5, 70, 100, 33, 2, 250, 9, 17, 200, 3]
    expected = reference_llama.forward(CONFIG, from_file, ids)
    engine.runner.add_sequence(0)
    prefill = engine.runner.prefill(0, ids, all_logits=True)  # the prefill (matrix-matrix) kernels
    np.testing.assert_allclose(prefill, expected, atol=2e-4, rtol=1e-3)
    engine.runner.add_sequence(1)
    decoded = [engine.runner.prefill(1, ids[:1])]
    for token in ids[1:]:  # one token at a time: the decode (matrix-vector) kernels, int16 activations
        decoded.append(engine.runner.decode([1], [token])[0])
    scale = np.abs(expected).max()
    assert np.abs(np.stack(decoded) - expected).max() < 2e-3 * scale


def test_a_type_that_cannot_be_kept_is_named_by_pack_and_in_the_manifest(tmp_path):
    source = tmp_path / "q5_1.gguf"
    write_gguf(source, seed=2, config=CONFIG, types=Q4_K_M_LIKE | {"o_proj.weight": "Q5_1"})
    result = edge_os("pack", source, "--out", tmp_path / "pkg", "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 tensor(s) not kept exactly: Q5_1 -> q4" in result.stderr
    not_kept = json.loads((tmp_path / "pkg" / "manifest.json").read_text())["quantization"]["not_kept"]
    assert not_kept == {f"model.layers.{i}.self_attn.o_proj.weight": "Q5_1 -> q4" for i in range(2)}
