"""Opens a package: checks the manifest, every file's hash and the CPU, then maps the weights."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import platform
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edge_os import __version__
from edge_os.errors import PackageError, TargetError, printable
from edge_os.package.checks import UNLISTED
from edge_os.package.manifest import Manifest

ALIGNMENT = 64  # bytes: where TVM-compiled kernels assume a buffer starts


def _open_plain(package_dir: Path, rel: str) -> int:
    """A read-only descriptor of a package file that is a plain file reached without symbolic links."""
    path = package_dir / rel
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise PackageError(f"package {package_dir} is missing {rel}; re-pack or re-flash it") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PackageError(f"package {package_dir}: {rel} is a symbolic link; package files must be plain "
                               "files, re-pack or re-flash it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PackageError(f"package {package_dir}: {rel} is not a plain file; re-pack or re-flash it")
    return fd


def _mismatch(package_dir: Path, rel: str) -> PackageError:
    return PackageError(f"package {package_dir}: {rel} does not match its sha256 in the manifest "
                        "(edited or corrupted); re-pack or re-flash it")


def _hash_fd(fd: int, sink=None) -> tuple[str, int]:
    """sha256 and length of everything left in ``fd`` (each block also written to ``sink``)."""
    digest, size = hashlib.sha256(), 0
    while block := os.read(fd, 1 << 20):
        digest.update(block)
        size += len(block)
        if sink is not None:
            sink.write(block)
    return digest.hexdigest(), size


def _check_listing(package_dir: Path, manifest: Manifest) -> None:
    """Every file the runtime opens is listed; every file present is listed; no symbolic links."""
    needed = {manifest.library, manifest.tokenizer["file"], *(p.shard for p in manifest.params)}
    unlisted = sorted(needed - set(manifest.files))
    if unlisted:
        raise PackageError(f"package {package_dir}: the manifest does not list {unlisted[0]} among its files, so it "
                           "cannot be verified; re-pack the model")
    for root, dirs, names in os.walk(package_dir):
        for name in dirs + names:
            full = Path(root) / name
            rel = full.relative_to(package_dir).as_posix()
            if full.is_symlink():
                raise PackageError(f"package {package_dir}: {printable(rel)} is a symbolic link; package files "
                                   "must be plain files, re-pack or re-flash it")
            if name in names and rel not in manifest.files and rel not in UNLISTED:
                raise PackageError(f"package {package_dir} holds {printable(rel)}, which its manifest does not "
                                   "list; "
                                   "remove it or re-flash the package")


def verify_files(package_dir: Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists as a plain file with its size and sha256, and the
    package directory holds nothing else (but ``manifest.json`` and a future ``manifest.sig``)."""
    package_dir = Path(package_dir)
    _check_listing(package_dir, manifest)
    for rel, info in manifest.files.items():
        fd = _open_plain(package_dir, rel)
        try:
            if os.fstat(fd).st_size != info["size"] or _hash_fd(fd) != (info["sha256"], info["size"]):
                raise _mismatch(package_dir, rel)
        finally:
            os.close(fd)


def verified_bytes(package_dir: Path, manifest: Manifest, rel: str) -> bytes:
    """The content of a listed file, checked against its sha256 from the very bytes returned."""
    info = manifest.files.get(rel)
    if info is None:
        raise PackageError(f"package {package_dir}: the manifest does not list {rel}; re-pack the model")
    fd = _open_plain(Path(package_dir), rel)
    with os.fdopen(fd, "rb") as f:
        data = f.read(info["size"] + 1)
    if len(data) != info["size"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise _mismatch(package_dir, rel)
    return data


@contextlib.contextmanager
def verified_library(package_dir: Path, manifest: Manifest) -> Iterator[Path]:
    """A private copy (in a fresh 0700 directory) of the package's library, hashed from the very
    bytes copied: what is loaded is what was verified, whatever happens to the package meanwhile.
    The copy is deleted on exit (a loaded library stays mapped)."""
    rel = manifest.library
    info = manifest.files.get(rel)
    if info is None:
        raise PackageError(f"package {package_dir}: the manifest does not list {rel}; re-pack the model")
    private = Path(tempfile.mkdtemp(prefix="edge-os-lib-"))
    try:
        copy = private / Path(rel).name
        src = _open_plain(Path(package_dir), rel)
        try:
            with open(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700), "wb") as out:
                digest = _hash_fd(src, out)
        finally:
            os.close(src)
        if digest != (info["sha256"], info["size"]):
            raise _mismatch(package_dir, rel)
        yield copy
    finally:
        shutil.rmtree(private, ignore_errors=True)


# aarch64 hardware capabilities (getauxval, as the kernel reports them; qemu-user reports the
# emulated CPU's): bit -> the /proc/cpuinfo name, which is what manifests record.
_HWCAP = {1: "asimd", 20: "asimddp", 22: "sve"}
_HWCAP2 = {13: "i8mm"}
_AT_HWCAP, _AT_HWCAP2 = 16, 26


def host_cpu_flags() -> set[str]:
    """ISA flags of this CPU as /proc/cpuinfo names them (empty where unknown). On aarch64 they
    come from the auxiliary vector, which emulators fill in for the CPU they emulate (their
    /proc/cpuinfo shows the host's)."""
    if platform.machine() in ("aarch64", "arm64"):
        return _aarch64_hwcaps()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _aarch64_hwcaps() -> set[str]:
    import ctypes

    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return set()
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    words = {_AT_HWCAP: _HWCAP, _AT_HWCAP2: _HWCAP2}
    return {name for at, bits in words.items() for bit, name in bits.items() if getauxval(at) >> bit & 1}


def check_target(package_dir: Path, manifest: Manifest) -> None:
    """The package was compiled for this kind of machine and this CPU has its instructions."""
    machine = platform.machine().replace("arm64", "aarch64").replace("AMD64", "x86_64")
    if manifest.target.arch != machine:
        raise TargetError(
            f"package {package_dir} was compiled for {manifest.target.name} ({manifest.target.arch}), "
            f"this machine is {machine}; pack it with --target for this device"
        )
    flags = host_cpu_flags()
    missing = [f for f in manifest.target.cpu_features if flags and f not in flags]
    if missing:
        raise TargetError(
            f"package {package_dir} needs CPU instructions this CPU lacks ({', '.join(missing)}; compiled for "
            f"{manifest.target.tvm_target.get('mcpu', '?')}); re-pack it on this machine with --target host"
        )


def open_package(package_dir: Path, verify: bool = True) -> Manifest:
    package_dir = Path(package_dir)
    manifest = Manifest.read(package_dir)
    if verify:
        verify_files(package_dir, manifest)
    check_target(package_dir, manifest)
    if manifest.runtime_version.split(".")[0] != __version__.split(".")[0]:
        raise PackageError(
            f"package {package_dir} was made by edge-os {manifest.runtime_version}, this is {__version__}; re-pack it"
        )
    return manifest


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``ALIGNMENT``-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def read_params(package_dir: Path, manifest: Manifest) -> Iterator[np.ndarray]:
    """The parameter arrays in manifest order, read one at a time (so loading never holds the
    weights twice: each array can be copied to the device and dropped before the next is read)."""
    handles: dict[str, BinaryIO] = {}
    try:
        for p in manifest.params:
            if p.shard not in handles:
                handles[p.shard] = os.fdopen(_open_plain(Path(package_dir), p.shard), "rb")
            f = handles[p.shard]
            if p.offset + p.nbytes > os.fstat(f.fileno()).st_size:
                raise PackageError(f"package {package_dir}: {p.shard} is shorter than its manifest says; re-pack it")
            f.seek(p.offset)
            array = aligned_empty(p.shape, p.dtype)  # the runtime uses it in place, no copy
            if f.readinto(memoryview(array).cast("B")) != p.nbytes:
                raise PackageError(f"package {package_dir}: {p.shard} is shorter than its manifest says; re-pack it")
            yield array
    finally:
        for f in handles.values():
            f.close()
