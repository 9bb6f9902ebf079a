"""SmolLM2 as Q4_K_M and Q5_K_M GGUFs (made from the bundled file by llama.cpp's ``llama-quantize``):
packed with every block kept bit-exactly, and perplexity within 1% of ``llama-perplexity`` on the
same file and text.

Slow tier. llama.cpp's tools are built from its PyPI sdist on first use (``bash tools/build_llamacpp.sh
--tools``, a few minutes) and kept in the build cache for later runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from edge_os.package.manifest import Manifest
from tests.integration.test_engine_tiny import package_weights

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BUILD = Path.home() / ".cache" / "edge-os" / "llama.cpp-0.3.36"
BIN = BUILD / "build" / "bin"


@pytest.fixture(scope="module")
def table_tool():
    if not (BIN / "llama-quantize").exists() or not (BIN / "llama-perplexity").exists():
        subprocess.run(["bash", str(ROOT / "tools" / "build_llamacpp.sh"), "--tools", str(BUILD)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "VENV": sys.prefix})
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import perplexity_table
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return perplexity_table


# the file's K-quant format -> the package formats it must hold (Q5_K_M: Q/K in Q5_1 next to V in
# Q8_0 in some layers, fused exactly as q8_m)
FORMATS = {"Q4_K_M": {"q4_k", "q6_k"}, "Q5_K_M": {"q5_1", "q5_k", "q6_k", "q8_m"}}


@pytest.fixture(scope="module", params=list(FORMATS))
def k_quant_file(request, table_tool, tmp_path_factory):
    work = tmp_path_factory.mktemp(request.param.lower())
    path = table_tool.make_k_quant(BIN, work, request.param)
    return request.param, path, table_tool.pack_gguf(path, work / "pkg")


def test_the_real_k_quant_file_is_kept_bit_exactly(k_quant_file):
    kind, path, package = k_quant_file
    manifest = Manifest.read(package)
    assert "not_kept" not in manifest.quantization
    assert FORMATS[kind] <= set(manifest.quantization["tensors"].values())
    reader = gguf.GGUFReader(str(path))
    in_package = package_weights(package)
    for t in reader.tensors:  # layer 0: Q6_K down, Q8_0 V; layer 3 (Q5_K_M): Q5_K down, Q5_1 V
        if t.name.startswith(("blk.0.", "blk.3.")) and t.name.endswith(("ffn_down.weight", "attn_v.weight",
                                                                          "ffn_up.weight")):
            name = {"ffn_down": "mlp.down_proj", "attn_v": "self_attn.v_proj", "ffn_up": "mlp.up_proj"}
            hf = f"model.layers.{t.name.split('.')[1]}.{name[t.name.split('.')[2]]}.weight"
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            expected = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)
            np.testing.assert_array_equal(in_package[hf], expected, err_msg=f"{t.name} ({t.tensor_type.name})")


def test_perplexity_is_within_one_percent_of_llama_cpp(table_tool, k_quant_file):
    _, path, package = k_quant_file
    ours, chunks = table_tool.edge_os_perplexity(package, 512, 2)
    theirs, their_chunks = table_tool.llamacpp_perplexity(BIN, path, 512, 2)
    print(f"perplexity: edge-os {ours:.4f}, llama.cpp {theirs:.4f}")
    assert chunks == their_chunks
    assert abs(ours / theirs - 1) < 0.01
