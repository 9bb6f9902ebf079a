"""A byte-level GGUF writer for tests: it writes whatever it is told, including counts that lie.

gguf-py's writer only writes consistent files; hostile inputs (an array that claims 10^9
elements in a 53-byte file, a head count that is a string) need a writer that does not check.
``tiny_metadata()`` and ``tiny_tensors()`` describe the tiny Llama of ``tests.tiny_model`` (a
valid file), which tests then break one field at a time.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from tests.tiny_model import CHATML, SPECIALS, byte_tokenizer, tiny_config, tiny_weights

U32, I32, F32, BOOL, STR, ARR, U64 = 4, 5, 6, 7, 8, 9, 10
_FMT = {U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q"}
GGML_F32 = 0


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def _value(kind: int, value) -> bytes:
    if kind == STR:
        return _string(value)
    if kind == ARR:
        elem, items, declared = value
        out = struct.pack("<IQ", elem, len(items) if declared is None else declared)
        return out + b"".join(_value(elem, v) for v in items)
    return struct.pack(_FMT[kind], value)


def gguf_bytes(metadata: list[tuple[str, int, object]], tensors: list[tuple[str, np.ndarray]] = (),
               tensor_count: int | None = None, kv_count: int | None = None) -> bytes:
    """A version-3 GGUF. ``metadata``: (key, type, value); an array value is (element type, items,
    declared count or None). Tensors are float32, given in Hugging Face (rows, cols) order."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors) if tensor_count is None else tensor_count,
                                len(metadata) if kv_count is None else kv_count)
    for key, kind, value in metadata:
        out += _string(key) + struct.pack("<I", kind) + _value(kind, value)
    offset, blobs = 0, []
    for name, array in tensors:
        dims = list(reversed(array.shape))
        out += _string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", GGML_F32, offset)
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        data += b"\0" * ((-len(data)) % 32)
        blobs.append(data)
        offset += len(data)
    out += b"\0" * ((-len(out)) % 32)
    return out + b"".join(blobs)


def tiny_metadata(**changes) -> list[tuple[str, int, object]]:
    """The tiny Llama's metadata; ``changes`` maps a key (dots as '__') to (type, value) or None to drop it."""
    config = tiny_config()
    vocab = [t for t, _ in sorted(byte_tokenizer()["model"]["vocab"].items(), key=lambda kv: kv[1])]
    meta = {
        "general.architecture": (STR, "llama"),
        "llama.block_count": (U32, config["num_hidden_layers"]),
        "llama.context_length": (U32, config["max_position_embeddings"]),
        "llama.embedding_length": (U32, config["hidden_size"]),
        "llama.feed_forward_length": (U32, config["intermediate_size"]),
        "llama.attention.head_count": (U32, config["num_attention_heads"]),
        "llama.attention.head_count_kv": (U32, config["num_key_value_heads"]),
        "llama.attention.layer_norm_rms_epsilon": (F32, config["rms_norm_eps"]),
        "tokenizer.ggml.model": (STR, "gpt2"),
        "tokenizer.ggml.pre": (STR, "gpt-2"),
        "tokenizer.ggml.tokens": (ARR, (STR, vocab, None)),
        "tokenizer.ggml.token_type": (ARR, (I32, [3 if t in SPECIALS else 1 for t in vocab], None)),
        "tokenizer.ggml.merges": (ARR, (STR, [], None)),
        "tokenizer.ggml.eos_token_id": (U32, SPECIALS.index("<|im_end|>")),
        "tokenizer.chat_template": (STR, CHATML),
    }
    for key, change in changes.items():
        key = key.replace("__", ".")
        if change is None:
            meta.pop(key, None)
        else:
            meta[key] = change
    return [(k, kind, v) for k, (kind, v) in meta.items()]


_GGUF_NAMES = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
               "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
               "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
               "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
               "mlp.down_proj.weight": "ffn_down.weight"}


def tiny_tensors() -> list[tuple[str, np.ndarray]]:
    """The tiny Llama's weights under their GGUF names (float32; Q/K row order does not matter here)."""
    out = []
    for name, array in tiny_weights(tiny_config()).items():
        if name == "model.embed_tokens.weight":
            out.append(("token_embd.weight", array))
        elif name == "model.norm.weight":
            out.append(("output_norm.weight", array))
        else:
            _, _, layer, rest = name.split(".", 3)
            out.append((f"blk.{layer}.{_GGUF_NAMES[rest]}", array))
    return out


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# Where each carried GGUF type keeps its float16 scales: (byte offset of each f16 in a block).
_F16_AT = {"Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,), "Q2_K": (80, 82),
           "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
GGUF_TYPE_OF = {"q4": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1", "q8": "Q8_0", "q4_k": "Q4_K",
                "q5_k": "Q5_K", "q6_k": "Q6_K"}


def random_gguf_blocks(ggml_type: str, n: int, k: int, rng, largest_scale: float = 1.0) -> np.ndarray:
    """Raw GGUF blocks ``[n, bytes per row]`` of ``ggml_type`` with random bytes: every bit pattern
    of the quants and sub-block scales occurs, and the float16 scales are finite, of magnitude
    ``largest_scale`` * (2**-10 .. 1)."""
    import gguf

    kind = getattr(gguf.GGMLQuantizationType, ggml_type)
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[kind]
    raw = rng.integers(0, 256, (n, k // block_values, block_bytes), dtype=np.uint8)
    for at in _F16_AT[ggml_type]:
        magnitude = rng.uniform(2.0**-10, 1.0, raw.shape[:2]) * largest_scale
        scales = (magnitude * rng.choice([-1, 1], raw.shape[:2])).astype(np.float16)
        raw[..., at:at + 2] = scales[..., None].view(np.uint8).reshape(*raw.shape[:2], 2)
    return raw.reshape(n, -1)


def crafted_weight(fmt: str, n: int, k: int, rng, scale_dtype: str = "float32"):
    """A ``QuantizedWeight`` of ``fmt``: random GGUF blocks carried over for the formats that only
    hold carried blocks, a random float weight quantized for the others."""
    from edge_os.quantize.formats import FORMATS
    from edge_os.quantize.reference import from_gguf_blocks, quantize

    if not FORMATS[fmt].carried_only:
        return quantize(rng.standard_normal((n, k)).astype(np.float32), fmt, scale_dtype)
    if fmt == "q8_m":  # made by fusing: Q5_1 rows (random blocks) over Q8_0 rows (rounded floats)
        from edge_os.quantize.reference import QuantizedWeight, as_q8_m

        half = n // 2
        parts = [as_q8_m(from_gguf_blocks(random_gguf_blocks("Q5_1", half, k, rng), "Q5_1", half, k)),
                 as_q8_m(quantize(rng.standard_normal((n - half, k)).astype(np.float32), "q8", "float16"))]
        arrays = {key: np.concatenate([p.arrays[key] for p in parts]) for key in parts[0].arrays}
        return QuantizedWeight(FORMATS[fmt], (n, k), arrays).with_scale_dtype(scale_dtype)
    ggml_type = GGUF_TYPE_OF[fmt]
    return from_gguf_blocks(random_gguf_blocks(ggml_type, n, k, rng), ggml_type, n, k).with_scale_dtype(scale_dtype)
