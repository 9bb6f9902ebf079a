"""The device bundle: what a board needs to run packages without the compiler.

```
DIR/bundle.json       target, architecture, Python version, edge-os version, the wheels
DIR/requirements.txt  the runtime's dependencies (edge-os's own, without the packing extras)
DIR/wheels/*.whl      those dependencies built for the device's CPU and Python, from PyPI
DIR/runtime/          the edge-os code (edge_os with its target descriptors, firmware_bridge)
DIR/install.sh        installs all of it into a virtual environment on the device
```

``edge-os emulate`` runs from exactly such a bundle, so what is tested is what ships.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import edge_os
from edge_os import __version__
from edge_os.errors import EmulationError, InputError
from edge_os.targets import DESCRIPTORS, Target

log = logging.getLogger(__name__)

BUNDLE_JSON = "bundle.json"
PYTHON_VERSION = "3.11"  # Debian bookworm's and Raspberry Pi OS's python3
# manylinux tags a glibc-2.36 (bookworm) board accepts, newest first.
_PLATFORMS = {"aarch64": ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                          "manylinux2014_aarch64"),
              "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                         "manylinux2014_x86_64")}

INSTALL_SH = r'''#!/bin/sh
# Installs the edge-os runtime from this bundle into a virtual environment: sh install.sh [DEST]
# (default $HOME/edge-os). Needs Python __PYTHON__ with its venv module; nothing is downloaded.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$HOME/edge-os}
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (__MAJOR__, __MINOR__))' || {
  echo "install.sh: this bundle needs Python __PYTHON__ ($python is another version; set PYTHON=...)" >&2; exit 1; }
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --no-index --find-links "$here/wheels" -r "$here/requirements.txt"
site=$("$dest/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/edge_os" "$site/firmware_bridge"
cp -R "$here/runtime/edge_os" "$here/runtime/firmware_bridge" "$site/"
printf '#!/bin/sh\nexec "%s/bin/python" -m edge_os "$@"\n' "$dest" > "$dest/bin/edge-os"
chmod +x "$dest/bin/edge-os"
echo "installed $dest/bin/edge-os"
'''


@dataclass(frozen=True)
class Bundle:
    path: Path
    target: str
    arch: str
    python: str
    wheels: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> Bundle:
        file = Path(path) / BUNDLE_JSON
        if not file.is_file():
            raise InputError(f"{path} is not a device bundle (no {BUNDLE_JSON}); make one with `edge-os bundle`")
        data = json.loads(file.read_text())
        return cls(Path(path), data["target"], data["arch"], data["python"], tuple(data["wheels"]))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def runtime_requirements() -> list[str]:
    """edge-os's own dependencies, without those of optional extras (packing, plots, dev)."""
    return [r for r in metadata.requires("edge-os") or [] if "extra ==" not in r]


def download_wheels(arch: str, dest: Path) -> list[Path]:
    """The runtime's dependencies as wheels for ``arch`` and CPython ``PYTHON_VERSION``, from the
    package index, into the empty folder ``dest`` (pip's own cache makes a second download quick)."""
    if arch not in _PLATFORMS:
        raise EmulationError(f"no wheels are known for {arch}; bundles exist for {', '.join(_PLATFORMS)}")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest),
               "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for tag in _PLATFORMS[arch]:
        command += ["--platform", tag]
    got = subprocess.run(command + runtime_requirements(), capture_output=True, text=True)
    if got.returncode != 0:
        reason = [line for line in got.stderr.splitlines() if line.startswith("ERROR")] or ["pip failed"]
        raise EmulationError(f"cannot download the {arch} wheels of the runtime ({reason[0]}); check the network "
                             "and the package index")
    return sorted(dest.glob("*.whl"))


def write_bundle(target: Target, out: Path, force: bool = False) -> Bundle:
    """Write the bundle for ``target`` at ``out`` (atomically: a temporary sibling renamed into place)."""
    out = Path(out)
    if out.exists() and not (force and (out / BUNDLE_JSON).is_file()):
        raise InputError(f"{out} already exists; choose another --out"
                         + (" (--force replaces only a bundle)" if force else " or pass --force"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "wheels").mkdir()
        wheels = download_wheels(target.arch, tmp / "wheels")
        _copy_runtime(tmp / "runtime")
        (tmp / "requirements.txt").write_text("\n".join(runtime_requirements()) + "\n")
        major, minor = PYTHON_VERSION.split(".")
        script = (INSTALL_SH.replace("__PYTHON__", PYTHON_VERSION)
                  .replace("__MAJOR__", major).replace("__MINOR__", minor))
        (tmp / "install.sh").write_text(script)
        (tmp / "install.sh").chmod(0o755)
        (tmp / BUNDLE_JSON).write_text(json.dumps({
            "target": target.name, "arch": target.arch, "python": PYTHON_VERSION, "edge_os": __version__,
            "wheels": [w.name for w in wheels]}, indent=1))
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bundle = Bundle.read(out)
    log.info("wrote the %s bundle %s (%.1f MB)", target.name, out, bundle.size_bytes() / 1e6)
    return bundle


def _copy_runtime(dest: Path) -> None:
    """This edge-os's code (installed or editable): ``edge_os`` with its target descriptors
    inside, and ``firmware_bridge``, into ``dest``."""
    import firmware_bridge

    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "target_descriptors")
    for package in (edge_os, firmware_bridge):
        source = Path(package.__file__).resolve().parent
        shutil.copytree(source, dest / source.name, ignore=skip)
    descriptors = dest / "edge_os" / "target_descriptors"
    descriptors.mkdir()
    for entry in resources.files(DESCRIPTORS).iterdir():
        if entry.name.endswith((".toml", ".py")):
            (descriptors / entry.name).write_bytes(entry.read_bytes())
