"""GGUF importer: metadata, tokenizer and tensors of a llama.cpp model file.

GGUF stores Llama's Q and K projections with their rows permuted for ggml's RoPE; they are put
back in Hugging Face order here (a row permutation, so quantized blocks stay exact).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge_os.convert.gguf_header import header_architecture, scan_gguf_header
from edge_os.convert.gguf_tokenizer import list_of, tokenizer_json_from_gguf
from edge_os.convert.source import ModelSource, SourceTensor
from edge_os.errors import ModelSourceError, printable
from edge_os.quantize.reference import CARRIED_GGUF_TYPES, from_gguf_blocks

# Tensor types we read: carried over exactly, or dequantized to float32 (then re-quantized).
CARRIED_TYPES = tuple(CARRIED_GGUF_TYPES)
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "gemma3")
# Sanity limits on model dimensions: far above any model an edge device runs, far below what
# would make the compiler or the packer allocate without bound.
MAX_HIDDEN = 1 << 16
MAX_FFN = 1 << 18
MAX_LAYERS = 512
MAX_HEADS = 1024
MAX_HEAD_DIM = 1024
MAX_CONTEXT = 1 << 24

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
# Where an architecture names or uses a layer tensor differently (Gemma 3 normalizes each block's
# output too: its ffn_norm is the norm *before* the MLP).
_ARCH_LAYER_NAMES = {
    "gemma3": {
        "attn_q_norm.weight": "self_attn.q_norm.weight",
        "attn_k_norm.weight": "self_attn.k_norm.weight",
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "ffn_norm.weight": "pre_feedforward_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(gguf_name: str, arch: str = "llama") -> str | None:
    """The Hugging Face name of a GGUF tensor, or None for tensors we do not use (rope_freqs)."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    layer_names = _LAYER_NAMES | _ARCH_LAYER_NAMES.get(arch, {})
    if m and m.group(2) in layer_names:
        return f"model.layers.{m.group(1)}.{layer_names[m.group(2)]}"
    return None


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


class _NumberFields:
    """Typed, range-checked reads of ``{arch}.*`` numbers: one line per bad or missing value."""

    def __init__(self, reader, path: Path, arch: str):
        self.reader, self.path, self.arch = reader, path, arch

    def _value(self, key: str, default):
        field = self.reader.fields.get(f"{self.arch}.{key}")
        if field is None:
            if default is None:
                raise ModelSourceError(f"{self.path} lacks {self.arch}.{key}, which the model needs; "
                                       "the file is incomplete")
            return default
        value = field.contents()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelSourceError(f"{self.path}: {self.arch}.{key} is {printable(repr(value), 40)}, not a number; "
                                   "the file is corrupt")
        return value

    def int(self, key: str, lo: int, hi: int, default: int | None = None) -> int:
        value = self._value(key, default)
        if isinstance(value, float) and not value.is_integer() or not lo <= value <= hi:
            raise ModelSourceError(f"{self.path}: {self.arch}.{key} is {value}, outside {lo}..{hi}; "
                                   "the file is corrupt or the model is too large for edge-os")
        return int(value)

    def float(self, key: str, default: float) -> float:
        value = float(self._value(key, default))
        if not math.isfinite(value) or value <= 0:
            raise ModelSourceError(f"{self.path}: {self.arch}.{key} is {value}, not a positive number")
        return value


def _unpermute_rows(n_rows: int, n_head: int) -> np.ndarray:
    """Row order that undoes llama.cpp's Q/K permutation (pairs interleaved -> halves)."""
    head_dim = n_rows // n_head
    h, j, i = np.meshgrid(np.arange(n_head), np.arange(2), np.arange(head_dim // 2), indexing="ij")
    return (h * head_dim + i * 2 + j).reshape(-1)


def _check_architecture(path: Path, arch: object) -> None:
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelSourceError(
            f"{path}: architecture {printable(repr(arch), 40)} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )


def open_gguf(path: Path) -> ModelSource:
    """Check and open a GGUF file; every problem with it is one ``ModelSourceError`` line."""
    arch = header_architecture(path)  # an unsupported model is known from the header in milliseconds
    if arch is not None:
        _check_architecture(path, arch)
    try:
        return _open_gguf(path)
    except UnicodeDecodeError as exc:  # gguf-py decodes every text field as UTF-8
        raise ModelSourceError(f"{path}: a text field is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                               "the file is corrupt") from None


def _open_gguf(path: Path) -> ModelSource:
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - packing extra not installed
        raise ModelSourceError("reading GGUF needs the `gguf` package: pip install 'edge-os[pack]'") from exc
    scan_gguf_header(path, {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()})
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise ModelSourceError(
            f"{path} is not a readable GGUF file (truncated or corrupt: {exc}); download or copy it again"
        ) from exc
    arch = _field(reader, "general.architecture")
    _check_architecture(path, arch)
    for t in reader.tensors:
        if t.tensor_type.name not in SUPPORTED_TYPES:
            raise ModelSourceError(
                f"{path}: tensor {printable(t.name)} has type {t.tensor_type.name}, which edge-os cannot read; "
                f"supported: {', '.join(SUPPORTED_TYPES)}"
            )
    number = _NumberFields(reader, path, arch)
    n_head = number.int("attention.head_count", 1, MAX_HEADS)
    n_kv = number.int("attention.head_count_kv", 1, n_head, default=n_head)
    if n_head % n_kv:
        raise ModelSourceError(f"{path}: {arch}.attention.head_count {n_head} is not a multiple of "
                               f"head_count_kv {n_kv}; the file is inconsistent")
    names = [t.name for t in reader.tensors]
    tokens = list_of(reader, path, "tokenizer.ggml.tokens", str)
    hidden = number.int("embedding_length", 1, MAX_HIDDEN)
    head_dim = number.int("attention.key_length", 1, MAX_HEAD_DIM, default=hidden // n_head)
    config = {
        "vocab_size": len(tokens),
        "hidden_size": hidden,
        "intermediate_size": number.int("feed_forward_length", 1, MAX_FFN),
        "num_hidden_layers": number.int("block_count", 1, MAX_LAYERS),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": number.float("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": number.float("rope.freq_base", 10000.0),
        "max_position_embeddings": number.int("context_length", 1, MAX_CONTEXT, default=2048),
        "tie_word_embeddings": "output.weight" not in names,
        "head_dim": head_dim,
    }
    if arch == "gemma3":
        config |= _gemma3_config(number, config)
    _check_file_complete(path, reader)
    tokenizer_json, bos, eos_ids, add_bos = tokenizer_json_from_gguf(reader, path)
    permute = arch == "llama"  # qwen2 and gemma3 GGUFs keep Hugging Face row order
    # llama.cpp stores Gemma's RMSNorm weights as the scale 1 + w; Hugging Face's w is the source's
    offset = -1.0 if arch == "gemma3" else 0.0

    def tensors() -> Iterator[SourceTensor]:
        for t in reader.tensors:
            name = hf_name(t.name, arch)
            if name is None:
                continue
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            rows = None
            if permute and name.endswith(("q_proj.weight", "k_proj.weight")):
                rows = _unpermute_rows(shape[0], n_head if "q_proj" in name else n_kv)
            shift = offset if name.endswith("norm.weight") else 0.0
            yield SourceTensor(name, shape, t.tensor_type.name, _loader(t, shape, rows, shift))

    return ModelSource(
        path=path, architecture=arch, hf_config=config, tokenizer_json=tokenizer_json,
        chat_template=_chat_template(reader, path), bos_token_id=bos,
        eos_token_ids=eos_ids, add_bos_token=add_bos, tensors=tensors,
        tensor_names=[n for n in (hf_name(x, arch) for x in names) if n],
    )


def _gemma3_config(number: _NumberFields, config: dict) -> dict:
    """Gemma 3's own settings. llama.cpp fixes the local layers' RoPE base at 10000 and, as
    Hugging Face does, scales attention by head_dim ** -0.5 except for the 27B model (62 layers),
    whose query_pre_attn_scalar is hidden / heads."""
    extra = {
        "sliding_window": number.int("attention.sliding_window", 16, MAX_CONTEXT, default=512),
        "rope_local_base_freq": number.float("rope.freq_base_swa", 10000.0),
    }
    if f"{number.arch}.final_logit_softcapping" in number.reader.fields:
        extra["final_logit_softcapping"] = number.float("final_logit_softcapping", 0.0)
    if config["num_hidden_layers"] == 62:
        extra["query_pre_attn_scalar"] = config["hidden_size"] // config["num_attention_heads"]
    factor = number.float("rope.scaling.factor", 1.0)
    if factor != 1.0:
        extra["rope_scaling"] = {"rope_type": "linear", "factor": factor}
    return extra


def _chat_template(reader, path: Path) -> str | None:
    template = _field(reader, "tokenizer.chat_template")
    if template is not None and not isinstance(template, str):
        raise ModelSourceError(f"{path}: tokenizer.chat_template is not text; the file is corrupt")
    return template


def _loader(t, shape: tuple[int, ...], rows: np.ndarray | None, shift: float = 0.0):
    import gguf

    def load(keep_blocks: bool):
        kind = t.tensor_type.name
        if keep_blocks and kind in CARRIED_TYPES and len(shape) == 2:
            qw = from_gguf_blocks(np.asarray(t.data), kind, shape[0], shape[1])
            return qw.take_rows(rows) if rows is not None else qw
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32, copy=False)
        values = values.reshape(shape)
        if shift:
            values = values + np.float32(shift)
        return np.ascontiguousarray(values[rows]) if rows is not None else values

    return load


def _check_file_complete(path: Path, reader) -> None:
    """GGUFReader memory-maps lazily: make sure the last tensor's bytes are really there."""
    size = path.stat().st_size
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)
        if end > size:
            raise ModelSourceError(
                f"{path} is truncated ({size} bytes, tensor {t.name} needs {end}); download or copy it again"
            )
