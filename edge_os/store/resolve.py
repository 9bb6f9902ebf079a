"""One resolver for every ``-m``/``--models`` value: a package directory or a store name."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edge_os.store.names import ModelName, looks_like_name
from edge_os.store.store import Store

# Descriptors of the in-use locks this process holds; closed (released) when it exits.
_held: list[int] = []


def resolve_model(value: str | Path) -> Path:
    """The package directory for ``value`` and mark it in use for the life of this process.

    An existing path is a package directory; otherwise a ``NAME[:TAG]`` is looked up in the store
    (an unknown name raises InputError listing the names there are). Anything else is returned as
    a path so the caller's own error (no manifest.json) names it.
    """
    text = str(value)
    path = Path(text).expanduser()
    store = Store.default()
    if path.exists() or not looks_like_name(text):
        try:
            hold_package(path, store)
        except OSError:
            pass  # a home it cannot write to: nothing there can be pruned either
        return path
    name = ModelName.parse(text)
    with store.locked(exclusive=False):
        ref = store.find(name)
        package = store.package_dir(ref)
        hold_package(package, store)
        store.mark_used(name)
    return package


def hold_package(package: Path, store: Store | None = None) -> None:
    """Mark ``package`` in use until this process exits, so `edge-os rm` and `prune` leave it alone.
    Packages the store cannot delete (anywhere outside ``$EDGE_OS_HOME``) need no mark."""
    store = store or Store.default()
    lock = store.use_lock_path(package)
    if lock is None:
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)
