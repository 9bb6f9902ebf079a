"""Run an edge-os command as an aarch64 board would, on this machine, under ``qemu-aarch64-static``.

The command runs in an aarch64 CPython 3.11 (``userland``) with the runtime and wheels of a
device bundle (``bundle``) unpacked on its path, and TVM's runtime library alone (no compiler):
the install a board gets from ``install.sh``. Both are built once and cached under
``$EDGE_OS_HOME/emulate/``. Emulated code runs several times slower than on the device.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from edge_os.deploy.bundle import BUNDLE_JSON, Bundle, write_bundle
from edge_os.deploy.userland import PYTHON, aarch64_root
from edge_os.errors import EmulationError
from edge_os.targets import Target

QEMU = "qemu-aarch64-static"
# An ARMv8.2 core with dot products, like the Raspberry Pi 5's Cortex-A76 (qemu's default "max"
# CPU makes numpy print spurious floating-point warnings).
QEMU_CPU = "neoverse-n1"


def check_emulation(target: Target) -> None:
    """Raise ``EmulationError`` unless ``target`` can be emulated here (cheap: no downloads)."""
    if target.arch != "aarch64":
        raise EmulationError(f"emulate runs aarch64 targets; {target.name} is {target.arch}, so run the command "
                             "directly")
    if shutil.which(QEMU) is None:
        raise EmulationError(f"emulating {target.name} needs {QEMU}, which is not on PATH; install the Debian package "
                             "qemu-user-static (bash tools/install-system-deps.sh)")


def default_bundle(target: Target, home: Path) -> Bundle:
    """The bundle for ``target`` cached under ``home``, written on first use."""
    path = home / "emulate" / target.name / "bundle"
    if (path / BUNDLE_JSON).is_file():
        return Bundle.read(path)
    return write_bundle(target, path, force=True)


class Emulator:
    """An aarch64 python running ``bundle`` under qemu-user."""

    def __init__(self, target: Target, home: Path, bundle: Bundle | None = None):
        check_emulation(target)
        self.bundle = bundle or default_bundle(target, home)
        if self.bundle.arch != target.arch:
            raise EmulationError(f"bundle {self.bundle.path} is for {self.bundle.arch}, not {target.arch}; make one "
                                 f"with `edge-os bundle --target {target.name}`")
        self.root = aarch64_root(home / "emulate" / "userland-aarch64")
        self.site = _unpacked_wheels(self.bundle, home / "emulate" / "sites")

    def command(self, *python_args: str) -> list[str]:
        # -P: the working directory is not put on the module path, so a source checkout there
        # cannot stand in for the bundle's runtime
        return [QEMU, "-L", str(self.root), str(self.root / PYTHON), "-P", *python_args]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(PYTHONPATH=f"{self.bundle.path / 'runtime'}{os.pathsep}{self.site}", PYTHONNOUSERSITE="1",
                   TVM_USE_RUNTIME_LIB="1", QEMU_CPU=QEMU_CPU)
        return env

    def run(self, *python_args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run the emulated python with ``python_args`` (``subprocess.run`` keyword arguments pass on)."""
        return subprocess.run(self.command(*python_args), env=self.env(), **kwargs)

    def edge_os(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``edge-os ARGV`` on the emulated board."""
        return self.run("-m", "edge_os", *argv, **kwargs)


def _unpacked_wheels(bundle: Bundle, sites: Path) -> Path:
    """The bundle's wheels unzipped into one directory (what ``pip install`` puts in site-packages
    for pure and binary wheels alike), once per set of wheels."""
    key = hashlib.sha256((bundle.path / BUNDLE_JSON).read_bytes()).hexdigest()[:16]
    site = sites / key
    if site.is_dir():
        return site
    sites.mkdir(parents=True, exist_ok=True)
    staging = sites / f".{key}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    for name in bundle.wheels:
        with zipfile.ZipFile(bundle.path / "wheels" / name) as wheel:
            for member in wheel.infolist():
                path = wheel.extract(member, staging)
                mode = member.external_attr >> 16
                if mode & 0o111:
                    os.chmod(path, mode & 0o777)
    staging.rename(site)
    return site
