"""Picks the importer for a path: a ``.gguf`` file or a Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path

from edge_os.convert.gguf import open_gguf
from edge_os.convert.hf import open_hf_folder
from edge_os.convert.source import ModelSource
from edge_os.errors import ModelSourceError


def open_source(path: str | Path) -> ModelSource:
    """Open a ``.gguf`` file or a Hugging Face model folder."""
    path = Path(path)
    if not path.exists():
        raise ModelSourceError(f"{path} does not exist; give a .gguf file or a Hugging Face model folder")
    if path.is_dir():
        return open_hf_folder(path)
    if path.suffix.lower() == ".gguf":
        return open_gguf(path)
    raise ModelSourceError(f"{path} is neither a .gguf file nor a folder; give one of those")
