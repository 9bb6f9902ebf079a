"""SmolLM2 as a Q4_K_M GGUF (made from the bundled file by llama.cpp's ``llama-quantize``): packed
with every block kept bit-exactly, and its perplexity within 1% of ``llama-perplexity`` on the same
file and text.

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


@pytest.fixture(scope="module")
def q4_k_m(table_tool, tmp_path_factory):
    work = tmp_path_factory.mktemp("q4km")
    path = table_tool.make_q4_k_m(BIN, work)
    return path, table_tool.pack_gguf(path, work / "pkg")


def test_the_real_q4_k_m_file_is_kept_bit_exactly(q4_k_m):
    path, package = q4_k_m
    manifest = Manifest.read(package)
    assert "not_kept" not in manifest.quantization
    assert {"q4_k", "q6_k"} <= set(manifest.quantization["tensors"].values())
    reader = gguf.GGUFReader(str(path))
    in_package = package_weights(package)
    for t in reader.tensors:
        if t.name.startswith("blk.0.") and t.name.endswith(("ffn_down.weight", "attn_v.weight", "ffn_up.weight")):
            name = {"ffn_down": "mlp.down_proj", "attn_v": "self_attn.v_proj", "ffn_up": "mlp.up_proj"}
            hf = f"model.layers.0.{name[t.name.split('.')[2]]}.weight"
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            expected = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)
            np.testing.assert_array_equal(in_package[hf], expected, err_msg=f"{t.name} ({t.tensor_type.name})")


def test_perplexity_is_within_one_percent_of_llama_cpp(table_tool, q4_k_m):
    path, package = q4_k_m
    ours, chunks = table_tool.edge_os_perplexity(package, 512, 2)
    theirs, their_chunks = table_tool.llamacpp_perplexity(BIN, path, 512, 2)
    print(f"perplexity: edge-os {ours:.4f}, llama.cpp {theirs:.4f}")
    assert chunks == their_chunks
    assert abs(ours / theirs - 1) < 0.01
