"""Model names: ``NAME[:TAG]``, the tag ``latest`` when none is given."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_os.errors import InputError

DEFAULT_TAG = "latest"
_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True, order=True)
class ModelName:
    name: str
    tag: str = DEFAULT_TAG

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """``"smollm2"`` -> smollm2:latest; raises InputError for anything but lower-case names."""
        name, _, tag = text.partition(":")
        tag = tag or DEFAULT_TAG
        for part in (name, tag):
            if not _PART.fullmatch(part):
                raise InputError(
                    f"{text!r} is not a model name; use NAME or NAME:TAG with lower-case letters, digits, "
                    "'.', '_' or '-' (e.g. smollm2:q4)"
                )
        return cls(name, tag)

    @property
    def file_name(self) -> str:
        """The name of its ref file (the ':' is safe on the file systems edge-os runs on)."""
        return f"{self.name}:{self.tag}"

    @property
    def short(self) -> str:
        """What the manifest and ``serve`` call it: the tag only when it is not ``latest``."""
        return self.name if self.tag == DEFAULT_TAG else self.file_name

    def __str__(self) -> str:
        return self.file_name


def looks_like_name(text: str) -> bool:
    """A value without a path separator that is a valid name (paths win when they exist)."""
    name, _, tag = text.partition(":")
    return "/" not in text and bool(_PART.fullmatch(name)) and (not tag or bool(_PART.fullmatch(tag)))
