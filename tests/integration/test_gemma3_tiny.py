"""A tiny random Gemma 3 (3 layers: two sliding-window, one global) packed from a Hugging Face
folder, against the numpy oracle (tests/reference_gemma3.py): prefill in chunks and decode steps
past the sliding window, unquantized with a float32 KV cache, so they must agree to float rounding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import reference_gemma3
from tests.tiny_model import byte_tokenizer, write_safetensors

WINDOW = 32  # tokens; prefill chunks are then 32 tokens too


def tiny_gemma3_config() -> dict:
    return {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 259, "hidden_size": 64,
        "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0,
        "sliding_window": WINDOW, "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
        "query_pre_attn_scalar": 16, "max_position_embeddings": 512, "tie_word_embeddings": True,
    }


def tiny_gemma3_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, ffn, d = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    w = lambda *shape: (rng.standard_normal(shape) * 0.1).astype(np.float32)  # noqa: E731
    norm = lambda n: (0.2 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731  (the scale is 1 + w)
    tensors = {"model.embed_tokens.weight": w(config["vocab_size"], h), "model.norm.weight": norm(h)}
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        tensors |= {
            f"{p}.input_layernorm.weight": norm(h), f"{p}.post_attention_layernorm.weight": norm(h),
            f"{p}.pre_feedforward_layernorm.weight": norm(h), f"{p}.post_feedforward_layernorm.weight": norm(h),
            f"{p}.self_attn.q_proj.weight": w(heads * d, h), f"{p}.self_attn.k_proj.weight": w(kv * d, h),
            f"{p}.self_attn.v_proj.weight": w(kv * d, h), f"{p}.self_attn.o_proj.weight": w(h, heads * d),
            f"{p}.self_attn.q_norm.weight": norm(d), f"{p}.self_attn.k_norm.weight": norm(d),
            f"{p}.mlp.gate_proj.weight": w(ffn, h), f"{p}.mlp.up_proj.weight": w(ffn, h),
            f"{p}.mlp.down_proj.weight": w(h, ffn),
        }
    return tensors


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory):
    from edge_os.package.pack import PackOptions, pack

    folder = tmp_path_factory.mktemp("gemma3-hf")
    config = tiny_gemma3_config()
    weights = tiny_gemma3_weights(config)
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", weights)
    (folder / "tokenizer.json").write_text(json.dumps(byte_tokenizer()))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "add_bos_token": False}))
    package = pack(PackOptions(folder, tmp_path_factory.mktemp("pkg") / "gemma3", quant="f32", kv_dtype="float32",
                               activations="float32", progress=False, force=True))
    return package, config, weights


def reference(config, weights, ids, **changes):
    config = config | changes
    hidden = reference_gemma3.hidden_states(config, weights, weights["model.embed_tokens.weight"][ids])
    return reference_gemma3.logits(config, hidden, [weights["model.embed_tokens.weight"]])


def test_prefill_and_decode_past_the_window_match_numpy(tiny_gemma3):
    from edge_os.runtime.engine import Engine

    package, config, weights = tiny_gemma3
    engine = Engine.load(package, context_tokens=256)
    assert engine.manifest.limits["prefill_chunk"] == WINDOW
    ids = list(np.random.default_rng(1).integers(3, 259, size=120))
    runner = engine.runner
    runner.add_sequence(1)
    try:
        got = runner.prefill(1, ids[:100], all_logits=True)  # chunks of 32, the later ones past the window
        got = np.concatenate([got, np.stack([runner.decode([1], [t])[0] for t in ids[100:]])])
    finally:
        runner.remove_sequence(1)
    want = reference(config, weights, ids)
    np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max())
    # the window matters: attending to everything gives other logits past position 32
    unwindowed = reference(config, weights, ids, sliding_window=10_000)
    assert np.abs(unwindowed[WINDOW + 8:] - want[WINDOW + 8:]).max() > 100 * 2e-4 * np.abs(want).max()


def test_decode_beside_prompt_chunks_past_the_window_matches_numpy(tiny_gemma3):
    """A stream past the window decodes in the same calls that carry another prompt in chunks of 7
    (the sliding-window layers of both sequences in one ragged batch), each as numpy has it alone."""
    from edge_os.runtime.engine import Engine

    package, config, weights = tiny_gemma3
    runner = Engine.load(package, context_tokens=256).runner
    rng = np.random.default_rng(2)
    stream, prompt = list(rng.integers(3, 259, size=60)), list(rng.integers(3, 259, size=70))
    runner.add_sequence(1)
    runner.add_sequence(2)
    got_stream, got_prompt = [], []
    try:
        runner.prefill(1, stream[:WINDOW + 8])
        for step, start in enumerate(range(0, len(prompt), 7)):
            out = runner.forward([1, 2], [[stream[WINDOW + 8 + step]], prompt[start:start + 7]])
            got_stream.append(out[0])
            got_prompt.append(out[1])
    finally:
        runner.remove_sequence(1)
        runner.remove_sequence(2)
    steps = len(got_stream)
    want_stream = reference(config, weights, stream[:WINDOW + 8 + steps])[WINDOW + 8:]
    want_prompt = reference(config, weights, prompt)[6::7]
    scale = 2e-4 * max(np.abs(want_stream).max(), np.abs(want_prompt).max())
    np.testing.assert_allclose(np.stack(got_stream), want_stream, atol=scale)
    np.testing.assert_allclose(np.stack(got_prompt), want_prompt, atol=scale)


def test_manifest_keeps_gemma_settings_and_template(tiny_gemma3):
    from edge_os.package.reader import open_package

    manifest = open_package(tiny_gemma3[0])
    assert manifest.architecture == "gemma3"
    assert manifest.config["layer_types"] == ["sliding_attention", "sliding_attention", "full_attention"]
    assert "<start_of_turn>" in manifest.chat_template  # the folder ships none: Gemma's own
