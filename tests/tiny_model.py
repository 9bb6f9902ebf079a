"""Tiny random models (2 layers, width 64, fixed seed) written as a Hugging Face folder or a GGUF.

They exercise the real importers, packer, compiler and engine in seconds. The tokenizer is
byte-level (every byte is a token) plus the ChatML special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def tiny_config(**overrides) -> dict:
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 256 + len(SPECIALS), "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": True,
    }
    config.update(overrides)
    return config


def tiny_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Hugging Face-named float32 tensors with a fixed seed."""
    rng = np.random.default_rng(seed)
    h, i = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = h // heads
    w = lambda *shape: (rng.standard_normal(shape) * 0.08).astype(np.float32)  # noqa: E731
    norm = lambda: (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)  # noqa: E731
    tensors = {"model.embed_tokens.weight": w(config["vocab_size"], h), "model.norm.weight": norm()}
    bias = config.get("model_type") == "qwen2"
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        tensors |= {
            f"{p}.input_layernorm.weight": norm(), f"{p}.post_attention_layernorm.weight": norm(),
            f"{p}.self_attn.q_proj.weight": w(heads * d, h), f"{p}.self_attn.k_proj.weight": w(kv * d, h),
            f"{p}.self_attn.v_proj.weight": w(kv * d, h), f"{p}.self_attn.o_proj.weight": w(h, heads * d),
            f"{p}.mlp.gate_proj.weight": w(i, h), f"{p}.mlp.up_proj.weight": w(i, h),
            f"{p}.mlp.down_proj.weight": w(h, i),
        }
        if bias:
            tensors |= {f"{p}.self_attn.{x}_proj.bias": w(n * d) for x, n in (("q", heads), ("k", kv), ("v", kv))}
    if not config["tie_word_embeddings"]:
        tensors["lm_head.weight"] = w(config["vocab_size"], h)
    return tensors


def byte_tokenizer() -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    return json.loads(tok.to_str())


def to_bf16_bits(array: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even (what torch's .to(bfloat16) does)."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def stored_values(array: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 values a tensor has after being written as ``dtype`` (F32, F16 or BF16)."""
    if dtype == "F16":
        return array.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return (to_bf16_bits(array).astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> None:
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        if dtype == "BF16":
            data = to_bf16_bits(array).tobytes()
        else:
            data = np.ascontiguousarray(array, dtype={"F32": np.float32, "F16": np.float16}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for blob in blobs:
            f.write(blob)


def write_hf_folder(folder: Path, seed: int = 0, dtype: str = "F32", shards: int = 1,
                    generation_config: dict | None = None, **overrides) -> Path:
    """A Hugging Face folder as people download it: weights as ``dtype`` (F32, F16, BF16), in one
    ``model.safetensors`` or in ``shards`` files with a ``model.safetensors.index.json``, and a
    ``generation_config.json`` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_config(**overrides)
    (folder / "config.json").write_text(json.dumps(config))
    tensors = tiny_weights(config, seed)
    if shards == 1:
        write_safetensors(folder / "model.safetensors", tensors, dtype)
    else:
        names = list(tensors)
        weight_map = {}
        for k in range(shards):
            file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            part = names[k::shards]
            write_safetensors(folder / file, {n: tensors[n] for n in part}, dtype)
            weight_map |= {n: file for n in part}
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": sum(a.nbytes for a in tensors.values())}, "weight_map": weight_map}))
    if generation_config is not None:
        (folder / "generation_config.json").write_text(json.dumps(generation_config))
    (folder / "tokenizer.json").write_text(json.dumps(byte_tokenizer()))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "bos_token": None, "chat_template": CHATML, "add_bos_token": False}))
    return folder


def _permute_for_gguf(w: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face -> llama.cpp row order for Q/K (what llama.cpp's converter does)."""
    n, k = w.shape
    return w.reshape(heads, 2, n // heads // 2, k).swapaxes(1, 2).reshape(n, k)


def write_gguf(path: Path, seed: int = 0, weight_type: str = "Q4_1", embed_type: str = "Q8_0",
               config: dict | None = None, types: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """A tiny llama GGUF with quantized blocks; returns the float tensors it was made from.

    ``types`` maps a Hugging Face name suffix (``mlp.down_proj.weight``) to a GGML type for those
    tensors; types gguf-py cannot quantize (K-quants) get random blocks of small values instead."""
    import gguf

    config = config or tiny_config()
    tensors = tiny_weights(config, seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_theta"])
    tok = byte_tokenizer()
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types([3 if t in SPECIALS else 1 for t, _ in vocab])
    writer.add_token_merges([])
    writer.add_eos_token_id(SPECIALS.index("<|im_end|>"))
    writer.add_bos_token_id(SPECIALS.index("<|im_start|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    layer_names = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                   "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                   "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight"}
    for name, array in tensors.items():
        if name in names:
            gname = names[name]
        else:
            _, _, layer, rest = name.split(".", 3)
            gname = f"blk.{layer}.{layer_names[rest]}"
        data = array
        if name.endswith("q_proj.weight"):
            data = _permute_for_gguf(array, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            data = _permute_for_gguf(array, config["num_key_value_heads"])
        if array.ndim == 1:
            writer.add_tensor(gname, data)
            continue
        type_name = next((t for suffix, t in (types or {}).items() if name.endswith(suffix)),
                         embed_type if "embed" in name else weight_type)
        kind = getattr(gguf.GGMLQuantizationType, type_name)
        try:
            blocks = gguf.quants.quantize(data, kind)
        except NotImplementedError:
            from tests.gguf_craft import random_gguf_blocks

            largest = {"Q6_K": 2.0**-12, "Q5_K": 2.0**-11}.get(type_name, 2.0**-10)  # values of about 0.1
            blocks = random_gguf_blocks(type_name, *data.shape, rng=np.random.default_rng(seed), largest_scale=largest)
        writer.add_tensor(gname, blocks, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors
