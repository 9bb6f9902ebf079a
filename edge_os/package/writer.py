"""Writes a package directory atomically: everything goes to a temporary sibling first."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_os.errors import InputError
from edge_os.package.manifest import MANIFEST, Manifest, ParamEntry

SHARD_BYTES = 256 << 20
ALIGN = 64


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_destination(dest: Path, force: bool) -> None:
    """Raise ``InputError`` unless a package may be written at ``dest``.

    ``dest`` may be missing or an empty directory. With ``force`` it may also be an edge-os package
    (its ``manifest.json`` parses and lists every file the directory holds); anything else, a
    user's folder or a file, is never replaced.
    """
    dest = Path(dest)
    if not dest.exists() and not dest.is_symlink():
        return
    if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
        return
    if not force:
        raise InputError(f"{dest} already exists; choose another --out or pass --force to replace the package there")
    if dest.is_symlink() or not dest.is_dir():
        raise InputError(f"{dest} is not a package directory; --force only replaces an edge-os package")
    try:
        listed = set(json.loads((dest / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{dest} is not an edge-os package (no readable {MANIFEST}); --force only replaces a package, "
            "choose another --out"
        ) from None
    foreign = sorted(
        rel for p in dest.rglob("*") if not p.is_dir() and (rel := p.relative_to(dest).as_posix()) not in listed
    )
    foreign = [rel for rel in foreign if rel != MANIFEST]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise InputError(
            f"{dest} holds files that are not part of its package ({shown}); move them away or choose another --out"
        )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


class PackageWriter:
    """``with PackageWriter(dest) as w: w.add_param(...); w.commit(manifest)``.

    Nothing appears at ``dest`` until ``commit`` renames the finished directory into place; an
    exception (or Ctrl-C) removes the temporary directory. ``overwrite`` replaces an existing
    package (never anything else, see ``check_destination``), and only once the new one is complete.
    """

    def __init__(self, dest: Path, overwrite: bool = False):
        self.dest = Path(dest)
        self.overwrite = overwrite
        check_destination(self.dest, overwrite)
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
        return self.commit_document(
            lambda files: Manifest(**{**manifest.__dict__, "params": tuple(self.params), "files": files}).to_json())

    def commit_document(self, manifest_json: Callable[[dict], str]) -> Path:
        """Hash every file, write ``manifest_json(files)`` as the manifest, and move the package
        into place (any kind of package: ``files`` maps each relative path to its sha256 and size)."""
        files = {}
        for path in sorted(p for p in self.tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(self.tmp).as_posix()
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        (self.tmp / MANIFEST).write_text(manifest_json(files))
        os.chmod(self.tmp, 0o755)
        check_destination(self.dest, self.overwrite)  # again: something may have appeared there meanwhile
        if self.dest.is_dir() and _exchange(self.tmp, self.dest):
            shutil.rmtree(self.tmp, ignore_errors=True)  # now the old package (or empty directory)
            return self.dest
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{os.getpid()}")
            os.rename(self.dest, old)
            os.rename(self.tmp, self.dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.tmp, self.dest)
        return self.dest
