"""The store's files and the operations that change them.

Layout under ``$EDGE_OS_HOME/store``::

    lock                 flock: shared to read a name, exclusive to change the store
    blobs/<sha256>       every package file once, read-only, named by the sha256 in its manifest
    packages/<id>/       a package: hard links to blobs plus its manifest.json (id: sha256 of it)
    refs/<name>:<tag>    JSON {"package": id, "source": ..., "pulled": epoch seconds}
    used/<name>:<tag>    its modification time is when the name was last used
    locks/<id>           flock held shared by every process that uses the package (serve, chat, ...)
    tmp/<work>/          one pull's work; flock'ed by its process, removed when that process is gone

Every change is a rename or a link, made under the exclusive lock, in an order where a process
killed at any point leaves no name pointing at a missing file: blobs first, then the package
directory (one rename), then the ref (one rename). ``collect_garbage`` (run by every store
command) removes what an interrupted pull or rm left behind: dead work dirs, packages no name
refers to and nobody uses, blobs no package links.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from edge_os.config import settings
from edge_os.errors import InputError, PackageError
from edge_os.package.manifest import MANIFEST, Manifest
from edge_os.package.writer import sha256_file
from edge_os.store.names import ModelName


@dataclass(frozen=True)
class Ref:
    """What a name points at."""

    name: ModelName
    package_id: str
    source: str
    pulled: float


@dataclass(frozen=True)
class Removed:
    """One thing garbage collection or prune deleted, and the bytes it freed."""

    path: Path
    nbytes: int


class Store:
    """The model store rooted at ``root`` (``Store.default()``: ``$EDGE_OS_HOME/store``)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.packages = self.root / "packages"
        self.refs_dir = self.root / "refs"
        self.used_dir = self.root / "used"
        self.locks = self.root / "locks"
        self.tmp = self.root / "tmp"

    @classmethod
    def default(cls) -> Store:
        return cls(settings().home / "store")

    def _ensure(self) -> None:
        for d in (self.blobs, self.packages, self.refs_dir, self.used_dir, self.locks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the store lock: shared to read names, exclusive to change anything."""
        self._ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # ----- names -----------------------------------------------------------------------------

    def refs(self) -> list[Ref]:
        """Every name in the store, sorted."""
        if not self.refs_dir.is_dir():
            return []
        refs = []
        for path in sorted(self.refs_dir.iterdir()):
            if path.name.startswith("."):
                continue
            ref = self._read_ref(path)
            if ref:
                refs.append(ref)
        return refs

    def _read_ref(self, path: Path) -> Ref | None:
        try:
            data = json.loads(path.read_text())
            return Ref(ModelName.parse(path.name), data["package"], data.get("source", ""), data.get("pulled", 0.0))
        except (OSError, ValueError, KeyError, InputError):
            return None  # not a ref this edge-os wrote; list and resolve skip it

    def find(self, name: ModelName) -> Ref:
        """The ref of ``name``; an unknown name raises InputError listing the names there are."""
        ref = self._read_ref(self.refs_dir / name.file_name)
        if ref is None:
            have = ", ".join(str(r.name) for r in self.refs()) or "none yet"
            raise InputError(
                f"no model named {name} (have: {have}); pull one with `edge-os pull SOURCE --name {name.name}` "
                "or give a package directory"
            )
        return ref

    def package_dir(self, ref: Ref) -> Path:
        return self.packages / ref.package_id

    def mark_used(self, name: ModelName) -> None:
        (self.used_dir / name.file_name).touch()

    def last_used(self, name: ModelName) -> float | None:
        try:
            return (self.used_dir / name.file_name).stat().st_mtime
        except FileNotFoundError:
            return None

    # ----- in-use locks ----------------------------------------------------------------------

    def use_lock_path(self, package_dir: Path) -> Path | None:
        """The lock file that marks ``package_dir`` in use, for packages this store may delete:
        its own and the cached default packages under ``$EDGE_OS_HOME/packages``."""
        package_dir = Path(package_dir).resolve()
        if package_dir.parent == self.packages.resolve():
            return self.locks / package_dir.name
        if package_dir.parent == (self.root.parent / "packages").resolve():
            return self.locks / f"default-{package_dir.name}"
        return None

    def in_use(self, lock_path: Path) -> bool:
        """Whether some process holds ``lock_path`` shared (it uses the package)."""
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # ----- pull --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def work_dir(self) -> Iterator[Path]:
        """A temporary directory inside the store, flock'ed while this process lives, removed after."""
        with self.locked(exclusive=True):
            path = Path(tempfile.mkdtemp(prefix="pull-", dir=self.tmp))
            fd = os.open(path, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    def add(self, name: ModelName, package: Path, source: str, work: Path) -> Ref:
        """Store the package at ``package`` under ``name`` (replacing what the name pointed at).

        Its files are checked against the manifest's sha256 as they enter (files already stored
        are linked, not copied); ``work`` is a
        ``work_dir()``, where files are staged (a package already inside it is linked, not copied).
        """
        manifest = Manifest.read(package)
        manifest = replace(manifest, name=name.short)
        text = manifest.to_json()
        package_id = hashlib.sha256(text.encode()).hexdigest()[:32]
        staged = self._stage(package, manifest, work)
        with self.locked(exclusive=True):
            assembled = work / f"assembled-{package_id}"
            assembled.mkdir()
            for rel, digest in staged.items():
                blob = self.blobs / digest
                with contextlib.suppress(FileExistsError):
                    os.link(work / "staged" / digest, blob)
                dest = assembled / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link(blob, dest)
            (assembled / MANIFEST).write_text(text)
            os.chmod(assembled, 0o755)
            final = self.packages / package_id
            if not final.exists():
                os.rename(assembled, final)
            ref = Ref(name, package_id, source, time.time())
            self._write_ref(ref)
            self._collect_garbage_locked()  # what the name pointed at before, unless another name or a process has it
        return ref

    def _stage(self, package: Path, manifest: Manifest, work: Path) -> dict[str, str]:
        """Put a read-only copy (or link) of every listed file under ``work/staged/<sha256>``,
        checking its hash; returns relative path -> sha256."""
        staged_dir = work / "staged"
        staged_dir.mkdir(exist_ok=True)
        package = Path(package).resolve()
        inside_work = package.is_relative_to(Path(work).resolve())
        staged = {}
        for rel, info in manifest.files.items():
            parts = PurePosixPath(rel).parts
            if PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
                raise PackageError(f"package {package}: manifest lists {rel!r}, a path outside the package")
            src = package / rel
            digest = info["sha256"]
            target = staged_dir / digest
            if target.exists() or _try_link(self.blobs / digest, target):  # already stored: no copy
                staged[rel] = digest
                continue
            if not src.is_file():
                raise PackageError(f"package {package} is missing {rel}; re-pack it")
            if inside_work:
                actual = sha256_file(src)
                os.link(src, target)
            else:
                actual = _copy_hashing(src, target)
            if actual != digest or target.stat().st_size != info["size"]:
                raise PackageError(
                    f"package {package}: {rel} does not match its sha256 in the manifest (edited or corrupted); "
                    "re-pack it"
                )
            os.chmod(target, 0o444)
            staged[rel] = digest
        return staged

    def _write_ref(self, ref: Ref) -> None:
        path = self.refs_dir / ref.name.file_name
        tmp = self.refs_dir / f".{ref.name.file_name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"package": ref.package_id, "source": ref.source, "pulled": ref.pulled}))
        os.replace(tmp, path)

    # ----- rm and garbage --------------------------------------------------------------------

    def remove(self, name: ModelName) -> list[Removed]:
        """Forget ``name`` and delete what only it used; refuses while a process uses its package."""
        with self.locked(exclusive=True):
            ref = self.find(name)
            lock = self.locks / ref.package_id
            if self.in_use(lock):
                raise InputError(
                    f"model {name} is in use by a running edge-os process (serve, chat, generate ...); "
                    "stop it first, then run `edge-os rm` again"
                )
            os.unlink(self.refs_dir / name.file_name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.used_dir / name.file_name)
            return self._collect_garbage_locked()

    def collect_garbage(self) -> list[Removed]:
        """Remove what interrupted pulls and removals left behind (see the module docstring)."""
        with self.locked(exclusive=True):
            return self._collect_garbage_locked()

    def _collect_garbage_locked(self) -> list[Removed]:
        removed = []
        for path in self.tmp.iterdir():
            if _owner_gone(path):
                removed.append(Removed(path, _tree_bytes(path, unique=True)))
                shutil.rmtree(path)
        for path in self.refs_dir.iterdir():
            if path.name.startswith("."):  # a ref write that never reached its rename
                path.unlink()
        referenced = {ref.package_id for ref in self.refs()}
        for path in self.packages.iterdir():
            if path.name in referenced or self.in_use(self.locks / path.name):
                continue
            _remove_tree(path, self.tmp)
            with contextlib.suppress(FileNotFoundError):
                (self.locks / path.name).unlink()
            removed.append(Removed(path, 0))  # its bytes are counted with the blobs it leaves orphaned
        for blob in self.blobs.iterdir():
            st = blob.stat()
            if st.st_nlink == 1:  # no package links it any more
                blob.unlink()
                removed.append(Removed(blob, st.st_size))
        return removed


    def delete_outside(self, package: Path) -> int:
        """Delete a package directory outside the store (a stale default package); returns its bytes.
        It is renamed to a dot-name first, so a kill midway never leaves it looking whole."""
        nbytes = _tree_bytes(package)
        doomed = package.with_name(f".pruning-{package.name}")
        os.rename(package, doomed)
        shutil.rmtree(doomed)
        return nbytes


def _link(blob: Path, dest: Path) -> None:
    try:
        os.link(blob, dest)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise PackageError(
                f"cannot hard-link {blob} to {dest} ({exc.strerror}); the model store needs a file system "
                "with hard links (ext4, xfs, btrfs...); set EDGE_OS_HOME to a directory on one"
            ) from exc
        raise


def _try_link(src: Path, dest: Path) -> bool:
    try:
        os.link(src, dest)
    except FileNotFoundError:
        return False
    return True


def _owner_gone(work: Path) -> bool:
    """A work dir whose flock nobody holds: its pull was killed."""
    try:
        fd = os.open(work, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _remove_tree(path: Path, tmp: Path) -> None:
    """Make ``path`` vanish in one rename, then delete the files (a kill midway leaves a dead work dir)."""
    doomed = Path(tempfile.mkdtemp(prefix="rm-", dir=tmp))
    os.rename(path, doomed / "x")
    shutil.rmtree(doomed)


def _tree_bytes(path: Path, unique: bool = False) -> int:
    """Bytes of the files under ``path`` (``unique``: only files no other link keeps alive)."""
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            if not unique or st.st_nlink == 1:
                total += st.st_size
    return total


def _copy_hashing(src: Path, dest: Path) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        for block in iter(lambda: fin.read(1 << 20), b""):
            digest.update(block)
            fout.write(block)
    return digest.hexdigest()
