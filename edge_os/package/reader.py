"""Opens a package: checks the manifest, every file's hash and the CPU, then maps the weights."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edge_os import __version__
from edge_os.errors import PackageError, TargetError
from edge_os.package.manifest import Manifest
from edge_os.package.writer import sha256_file

ALIGNMENT = 64  # bytes: where TVM-compiled kernels assume a buffer starts


def verify_files(package_dir: Path, manifest: Manifest) -> None:
    """Every file listed in the manifest exists with its size and sha256."""
    for rel, info in manifest.files.items():
        path = package_dir / rel
        if not path.is_file():
            raise PackageError(f"package {package_dir} is missing {rel}; re-pack or re-flash it")
        if path.stat().st_size != info["size"] or sha256_file(path) != info["sha256"]:
            raise PackageError(
                f"package {package_dir}: {rel} does not match its sha256 in the manifest "
                "(edited or corrupted); re-pack or re-flash it"
            )


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
                handles[p.shard] = open(package_dir / p.shard, "rb")
            f = handles[p.shard]
            f.seek(p.offset)
            array = aligned_empty(p.shape, p.dtype)  # the runtime uses it in place, no copy
            if f.readinto(memoryview(array).cast("B")) != p.nbytes:
                raise PackageError(f"package {package_dir}: {p.shard} is shorter than its manifest says; re-pack it")
            yield array
    finally:
        for f in handles.values():
            f.close()
