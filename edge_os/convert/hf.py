"""Hugging Face folder importer: ``config.json``, ``*.safetensors``, ``tokenizer.json``.

Folders as people download them: F32, F16 or BF16 weights, one file or shards listed in
``model.safetensors.index.json``, stop tokens from ``generation_config.json`` as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from edge_os.convert.safetensors import load_tensor, read_header
from edge_os.convert.source import END_OF_TURN_TOKENS, ModelSource, SourceTensor
from edge_os.errors import ModelSourceError
from edge_os.models.registry import HF_ARCHITECTURES


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelSourceError(f"{path.parent} has no {path.name} ({what}); is it a Hugging Face model folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelSourceError(f"{path} is not valid JSON ({exc}); copy the model again") from exc


def _token_id(tokenizer: dict, token) -> int | None:
    if isinstance(token, dict):
        token = token.get("content")
    if token is None:
        return None
    for added in tokenizer.get("added_tokens", []):
        if added["content"] == token:
            return added["id"]
    return tokenizer.get("model", {}).get("vocab", {}).get(token)


def _ids(value) -> list[int]:
    """``eos_token_id`` as Hugging Face writes it: an int, a list of ints, or absent."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int)]
    return []


INDEX = "model.safetensors.index.json"


def _weight_files(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """The safetensors files to read and the index's tensor -> file map (empty without an index)."""
    index_path = folder / INDEX
    if index_path.is_file():
        weight_map = _read_json(index_path, "the shard index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelSourceError(f"{index_path} has no weight_map; download the model again")
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelSourceError(
                f"{folder} lacks {len(missing)} of the {len(files)} shards its {INDEX} lists "
                f"({', '.join(missing[:3])}); finish the download"
            )
        return files, weight_map
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelSourceError(f"{folder} has no *.safetensors weights; convert .bin checkpoints to safetensors first")
    return files, {}


def _check_index(folder: Path, weight_map: dict[str, str], headers) -> None:
    """Every tensor the index lists is in the shard it names."""
    held = {path.name: header for path, header, _ in headers}
    for tensor, shard in weight_map.items():
        if tensor not in held[shard]:
            raise ModelSourceError(
                f"{folder}/{INDEX} puts {tensor} in {shard}, which does not hold it; download the model again"
            )


def open_hf_folder(folder: Path) -> ModelSource:
    config = _read_json(folder / "config.json", "the model settings")
    names = config.get("architectures") or []
    arch = next((HF_ARCHITECTURES[n] for n in names if n in HF_ARCHITECTURES), None)
    if arch is None:
        raise ModelSourceError(
            f"{folder}: architecture {names or config.get('model_type')} is not supported; "
            f"supported: {', '.join(HF_ARCHITECTURES)}"
        )
    files, weight_map = _weight_files(folder)
    tokenizer_path = folder / "tokenizer.json"
    tokenizer = _read_json(tokenizer_path, "the tokenizer")
    tok_config = _read_json(folder / "tokenizer_config.json", "tokenizer settings") \
        if (folder / "tokenizer_config.json").is_file() else {}
    headers = [(f, *read_header(f)) for f in files]
    tensor_names = [name for _, header, _ in headers for name in header]
    _check_index(folder, weight_map, headers)

    eos = _token_id(tokenizer, tok_config.get("eos_token"))
    eos_ids = [] if eos is None else [eos]
    generation = _read_json(folder / "generation_config.json", "generation settings") \
        if (folder / "generation_config.json").is_file() else {}
    for tid in (*_ids(generation.get("eos_token_id")), *_ids(config.get("eos_token_id"))):
        if tid not in eos_ids:
            eos_ids.append(tid)
    for token in END_OF_TURN_TOKENS:
        tid = _token_id(tokenizer, token)
        if tid is not None and tid not in eos_ids:
            eos_ids.append(tid)

    def tensors() -> Iterator[SourceTensor]:
        for path, header, start in headers:
            for name, info in header.items():
                yield SourceTensor(name, tuple(info["shape"]), info["dtype"],
                                   lambda _keep, p=path, i=info, s=start: load_tensor(p, i, s))

    return ModelSource(
        path=folder, architecture=arch, hf_config=config, tokenizer_json=tokenizer_path.read_text(),
        chat_template=tok_config.get("chat_template"),
        bos_token_id=_token_id(tokenizer, tok_config.get("bos_token")),
        eos_token_ids=eos_ids, add_bos_token=bool(tok_config.get("add_bos_token", False)),
        tensors=tensors, tensor_names=tensor_names,
    )
