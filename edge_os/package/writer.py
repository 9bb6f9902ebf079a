"""Writes a package directory atomically: everything goes to a temporary sibling first."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_os.package.manifest import MANIFEST, Manifest, ParamEntry

SHARD_BYTES = 256 << 20
ALIGN = 64


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PackageWriter:
    """``with PackageWriter(dest) as w: w.add_param(...); w.commit(manifest)``.

    Nothing appears at ``dest`` until ``commit`` renames the finished directory into place; an
    exception (or Ctrl-C) removes the temporary directory.
    """

    def __init__(self, dest: Path, overwrite: bool = False):
        self.dest = Path(dest)
        if self.dest.exists() and not overwrite:
            from edge_os.errors import InputError

            raise InputError(f"{self.dest} already exists; choose another --out or pass --force")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", dir=self.dest.parent))
        (self.tmp / "weights").mkdir()
        self.params: list[ParamEntry] = []
        self._shard_index = -1
        self._shard = None
        self._shard_size = 0

    def __enter__(self) -> PackageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._shard:
            self._shard.close()
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where to write an extra file (library, tokenizer) inside the package being built."""
        return self.tmp / name

    def add_param(self, name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if self._shard is None or self._shard_size + array.nbytes > SHARD_BYTES:
            self._open_next_shard()
        pad = (-self._shard_size) % ALIGN
        self._shard.write(b"\0" * pad)
        self._shard_size += pad
        self.params.append(ParamEntry(name, tuple(array.shape), str(array.dtype),
                                      self._shard_name, self._shard_size, array.nbytes))
        self._shard.write(array.tobytes())
        self._shard_size += array.nbytes

    def _open_next_shard(self) -> None:
        if self._shard:
            self._shard.close()
        self._shard_index += 1
        self._shard_name = f"weights/shard-{self._shard_index:05d}.bin"
        self._shard = open(self.tmp / self._shard_name, "wb")
        self._shard_size = 0

    def commit(self, manifest: Manifest) -> Path:
        """Hash every file, write the manifest, and move the package into place."""
        if self._shard:
            self._shard.close()
            self._shard = None
        files = {}
        for path in sorted(p for p in self.tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(self.tmp).as_posix()
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        final = Manifest(**{**manifest.__dict__, "params": tuple(self.params), "files": files})
        (self.tmp / MANIFEST).write_text(final.to_json())
        os.chmod(self.tmp, 0o755)
        old = None
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{os.getpid()}")
            os.rename(self.dest, old)
        os.rename(self.tmp, self.dest)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return self.dest
