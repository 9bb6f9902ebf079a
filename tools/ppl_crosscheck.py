#!/usr/bin/env python3
"""Where a perplexity gap between edge-os and llama.cpp comes from (docs/models.md, Gemma 3).

Two more scorers of the same GGUF and text, both scoring as ``llama-perplexity`` does (the GGUF's own
tokens with BOS first, chunks of ``--ctx``, each chunk's first token replaced by BOS, the second half
of each chunk scored), both printing whether their token ids equal edge-os's:

``hf``: Hugging Face transformers' ``Gemma3ForCausalLM`` in float32 on the CPU, its weights dequantized
from the GGUF with gguf-py (a third forward pass, sharing no code with edge-os, its numpy reference or
llama.cpp). ``--q8-activations`` rounds the input of every matrix product to 8 bits per block as
llama.cpp's CPU kernels do before their integer dot products: blocks of 32 with a float16 scale (Q8_0)
against Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights, blocks of 256 (Q8_K) against the K-quants.

``llamacpp``: llama.cpp itself through llama-cpp-python, with its KV-cache type and flash attention
chosen; ``--f32-copy`` first writes an F32 copy of the GGUF (llama.cpp's own requantization to
``ALL_F32``), on which its matrix products multiply float32 by float32 with no activation rounding.

Neither transformers nor llama-cpp-python is an edge-os dependency; install them into the venv by hand
(``pip install transformers``; ``bash tools/build_llamacpp.sh``):

    .venv/bin/python tools/ppl_crosscheck.py hf GGUF [--q8-activations]
    .venv/bin/python tools/ppl_crosscheck.py llamacpp GGUF [--kv f16|f32] [--fa auto|on|off] [--f32-copy]
"""

from __future__ import annotations

import argparse
import ctypes
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "tests" / "data" / "declaration_of_independence.txt"
# GGUF block name -> Hugging Face module name inside a Gemma 3 layer
LAYER_MODULES = {
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm", "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
Q8_0_PARTNERS = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}  # weights whose dot products take Q8_0 activations


def edge_os_ids(gguf_path: Path) -> tuple[list[int], int | None]:
    """The text's token ids as edge-os packs the GGUF's tokenizer (BOS first when the file asks)."""
    import gguf
    from tokenizers import Tokenizer

    from edge_os.convert.gguf_tokenizer import tokenizer_json_from_gguf

    tokenizer_json, bos, _, add_bos = tokenizer_json_from_gguf(gguf.GGUFReader(str(gguf_path)), gguf_path)
    ids = Tokenizer.from_str(tokenizer_json).encode(TEXT.read_text(), add_special_tokens=False).ids
    return ([bos, *ids] if add_bos and bos is not None else ids), (bos if add_bos else None)


def score(logits_of, ids: list[int], bos: int | None, ctx: int, chunks: int = 0) -> float:
    """llama-perplexity's estimate: ``logits_of(window)`` gives ``(ctx, vocab)`` logits for a window;
    ``chunks`` > 0 scores only the first ones (a quick check)."""
    first, nll, scored = ctx // 2, 0.0, 0
    for chunk in range(min(len(ids) // ctx, chunks or len(ids))):
        window = list(ids[chunk * ctx:(chunk + 1) * ctx])
        if bos is not None:
            window[0] = bos
        logits = np.asarray(logits_of(window), dtype=np.float64)[first:ctx - 1]
        logits -= logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        nll -= float(logp[np.arange(ctx - 1 - first), window[first + 1:]].sum())
        scored += ctx - 1 - first
        print(f"  chunk {chunk + 1}: running perplexity {math.exp(nll / scored):.4f}", file=sys.stderr, flush=True)
    return math.exp(nll / scored)


def _hf_name(gguf_name: str) -> str:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    _, layer, block, _ = gguf_name.split(".")
    return f"model.layers.{layer}.{LAYER_MODULES[block]}.weight"


def hf_model(gguf_path: Path, q8_activations: bool):
    """transformers' Gemma 3 from the GGUF's settings and dequantized tensors (norms back to ``w``)."""
    import gguf
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    reader = gguf.GGUFReader(str(gguf_path))
    arch = reader.fields["general.architecture"].contents()
    if arch != "gemma3":
        raise SystemExit(f"{gguf_path}: architecture {arch!r}; the hf scorer knows gemma3 only")
    meta = {k[len("gemma3."):]: f.contents() for k, f in reader.fields.items() if k.startswith("gemma3.")}
    layers = int(meta["block_count"])
    config = Gemma3TextConfig(
        vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data), hidden_size=int(meta["embedding_length"]),
        intermediate_size=int(meta["feed_forward_length"]), num_hidden_layers=layers,
        num_attention_heads=int(meta["attention.head_count"]), num_key_value_heads=int(meta["attention.head_count_kv"]),
        head_dim=int(meta["attention.key_length"]), rms_norm_eps=float(meta["attention.layer_norm_rms_epsilon"]),
        rope_theta=float(meta["rope.freq_base"]), rope_local_base_freq=10000.0,
        sliding_window=int(meta["attention.sliding_window"]), query_pre_attn_scalar=int(meta["attention.key_length"]),
        final_logit_softcapping=meta.get("final_logit_softcapping"), attn_logit_softcapping=None,
        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=int(meta["context_length"]),
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)],
        tie_word_embeddings=True, attn_implementation="eager")
    if layers == 62:  # the 27B model scales queries by hidden / heads (as edge-os and llama.cpp do)
        config.query_pre_attn_scalar = config.hidden_size // config.num_attention_heads
    model = Gemma3ForCausalLM(config).float().eval()
    state, block = {}, {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        values = values.reshape([int(d) for d in reversed(t.shape.tolist())])
        name = _hf_name(t.name)
        if name.endswith("norm.weight"):
            values = values - np.float32(1.0)  # llama.cpp's GGUF stores Gemma's 1 + w
        state[name] = torch.from_numpy(np.ascontiguousarray(values))
        if values.ndim == 2:
            module = "lm_head" if t.name == "token_embd.weight" else name[:-len(".weight")]
            block[module] = 32 if t.tensor_type.name in Q8_0_PARTNERS else 256
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise SystemExit(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    if q8_activations:
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_pre_hook(lambda _m, args, b=block[name]: (_round_q8(args[0], b),))
    return model


def _round_q8(x, block: int):
    """``x`` rounded to 8-bit integers times one scale per ``block`` values (float16 scale for Q8_0)."""
    import torch

    rows = x.reshape(-1, block)
    scale = rows.abs().amax(dim=-1, keepdim=True) / 127.0
    if block == 32:
        scale = scale.half().float()
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return (torch.round(rows / scale).clamp(-127, 127) * scale).reshape(x.shape)


def run_hf(args) -> float:
    import torch

    torch.set_num_threads(args.threads)
    ids, bos = edge_os_ids(args.gguf)
    model = hf_model(args.gguf, args.q8_activations)

    def logits_of(window):
        with torch.no_grad():
            return model(torch.tensor([window])).logits[0].numpy()

    return score(logits_of, ids, bos, args.ctx, args.chunks)


def f32_copy(gguf_path: Path) -> Path:
    """llama.cpp's requantization of the file to ALL_F32 (every tensor dequantized), next to it."""
    import llama_cpp

    out = gguf_path.with_name(gguf_path.stem + ".f32.gguf")
    if not out.exists():
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize = llama_cpp.LLAMA_FTYPE_ALL_F32, True
        partial = out.with_suffix(".partial")
        if llama_cpp.llama_model_quantize(str(gguf_path).encode(), str(partial).encode(), ctypes.byref(params)):
            raise SystemExit(f"llama.cpp could not write an F32 copy of {gguf_path}")
        partial.rename(out)
    return out


def run_llamacpp(args) -> float:
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    path = f32_copy(args.gguf) if args.f32_copy else args.gguf
    kv = {"f16": lib.GGML_TYPE_F16, "f32": lib.GGML_TYPE_F32}[args.kv]
    enabled = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED
    if args.fa == "auto":  # llama-perplexity's default; llama-cpp-python only offers on/off, so "on" is mapped to it
        lib.LLAMA_FLASH_ATTN_TYPE_ENABLED = lib.LLAMA_FLASH_ATTN_TYPE_AUTO
    try:
        llm = llama_cpp.Llama(str(path), n_ctx=args.ctx, n_batch=args.ctx, n_ubatch=args.ctx, logits_all=True,
                              n_threads=args.threads, type_k=kv, type_v=kv, flash_attn=args.fa != "off",
                              verbose=False)
    finally:
        lib.LLAMA_FLASH_ATTN_TYPE_ENABLED = enabled
    ids = llm.tokenize(TEXT.read_text().encode(), add_bos=True, special=False)
    ours, _ = edge_os_ids(args.gguf)
    print(f"token ids: llama.cpp {len(ids)}, edge-os {len(ours)}, identical: {ids == ours}", file=sys.stderr)
    bos = llm.token_bos() if llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true" else None

    def logits_of(window):
        llm.reset()
        llm.eval(window)
        return llm.scores[:len(window)]

    return score(logits_of, ids, bos, args.ctx, args.chunks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="scorer", required=True)
    hf = sub.add_parser("hf", help="transformers float32 on the dequantized GGUF")
    hf.add_argument("--q8-activations", action="store_true", help="round matmul inputs as llama.cpp's CPU does")
    lc = sub.add_parser("llamacpp", help="llama.cpp through llama-cpp-python")
    lc.add_argument("--kv", choices=["f16", "f32"], default="f16", help="KV-cache type (llama.cpp's default f16)")
    lc.add_argument("--fa", choices=["auto", "on", "off"], default="auto", help="flash attention")
    lc.add_argument("--f32-copy", action="store_true", help="score an F32 copy of the GGUF")
    for p in (hf, lc):
        p.add_argument("gguf", type=Path)
        p.add_argument("--ctx", type=int, default=512)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--chunks", type=int, default=0, help="score only the first N chunks (default: all)")
    args = parser.parse_args()
    ppl = run_hf(args) if args.scorer == "hf" else run_llamacpp(args)
    print(f"{args.scorer} {args.gguf.name} {' '.join(sys.argv[2:])}: PPL {ppl:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
