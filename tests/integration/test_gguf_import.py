"""A GGUF with Q4_1 / Q8_0 blocks is packed without a second rounding and runs correctly."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from edge_os.package.pack import PackOptions, pack
from edge_os.runtime.engine import Engine
from tests import reference_llama
from tests.integration.test_engine_tiny import package_weights
from tests.tiny_model import tiny_config, write_gguf


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_gguf(path, seed=4)
    return path


def _file_weights(path) -> dict[str, np.ndarray]:
    """Dequantized straight from the file with gguf-py, Q/K rows put back in Hugging Face order."""
    from edge_os.convert.gguf import hf_name

    reader = gguf.GGUFReader(str(path))
    heads, kv = tiny_config()["num_attention_heads"], tiny_config()["num_key_value_heads"]
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        w = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)
        name = hf_name(t.name)
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            n_head = heads if "q_proj" in name else kv
            w = w.reshape(n_head, w.shape[0] // n_head // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
        out[name] = w.astype(np.float32)
    return out


def test_auto_quant_keeps_the_gguf_values_exactly(gguf_file, tmp_path):
    from edge_os.package.manifest import Manifest

    # float32 activations: the kernels on the file's own blocks are then exact up to float rounding
    # (the int16 default's rounding is bounded by test_gguf_kquants on the same block types).
    package = pack(PackOptions(gguf_file, tmp_path / "pkg", quant="auto", progress=False, kv_dtype="float32",
                               activations="float32"))
    manifest = Manifest.read(package)
    # The file's float16 scales are stored as they are: no widening to float32 (more bytes per token).
    assert manifest.quantization["scale_dtype"] == "float16"
    assert {p.dtype for p in manifest.params if p.name.endswith((".scale", ".minimum"))} == {"float16"}
    in_package = package_weights(package)
    from_file = _file_weights(gguf_file)
    assert set(from_file) == set(in_package)
    for name, w in from_file.items():
        np.testing.assert_array_equal(in_package[name], w, err_msg=name)

    engine = Engine.load(package, context_tokens=128)
    ids = [5, 70, 100, 33, 2, 250, 9, 17, 200, 3]
    engine.runner.add_sequence(0)
    got = engine.runner.prefill(0, ids, all_logits=True)
    np.testing.assert_allclose(got, reference_llama.forward(tiny_config(), from_file, ids), atol=2e-4, rtol=1e-3)


def test_requantizing_to_q4f32_rounds_a_second_time(gguf_file, tmp_path):
    package = pack(PackOptions(gguf_file, tmp_path / "pkg", quant="q4f32", progress=False))
    from edge_os.package.manifest import Manifest

    assert set(Manifest.read(package).quantization["tensors"].values()) == {"q4"}
    in_package = package_weights(package)
    from_file = _file_weights(gguf_file)
    name = "model.layers.0.mlp.down_proj.weight"
    assert not np.array_equal(in_package[name], from_file[name])
    assert np.abs(in_package[name] - from_file[name]).max() < 0.1
