"""File-system steps that survive a power cut: synced writes, synced directories, atomic renames."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

TMP_PREFIX = ".tmp-"  # every temporary name in a device store starts with this; recovery deletes them


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary sibling and a rename: after a power cut
    ``path`` holds the old or the new bytes, never a mix."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")


def read_json(path: Path, default: dict | None = None) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        if default is None:
            raise
        return dict(default)


def symlink_atomic(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one rename (the old link stays until the new one replaces it)."""
    tmp = link.with_name(f"{TMP_PREFIX}{link.name}-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def remove_tree(path: Path) -> None:
    """Delete a directory so that a cut halfway leaves only a temporary name behind: rename it
    first (one synced step), then delete."""
    if not path.exists() and not path.is_symlink():
        return
    doomed = path.with_name(f"{TMP_PREFIX}{path.name}-trash-{os.getpid()}")
    os.rename(path, doomed)
    fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)
