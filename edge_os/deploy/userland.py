"""An aarch64 Debian userland (CPython 3.11 and the libraries it loads), assembled without root
tools: ``apt-get download`` fetches the arm64 packages and ``dpkg -x`` unpacks them into a
directory that ``qemu-aarch64-static -L`` treats as the root. Built once, cached."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge_os.errors import EmulationError

log = logging.getLogger(__name__)

PYTHON = "usr/bin/python3.11"
# CPython's minimal and standard-library packages and the shared libraries their extension
# modules link (ssl, sqlite3, bz2, lzma, ctypes, readline, uuid, crypt).
PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1", "libstdc++6",
    "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0", "liblzma5", "libsqlite3-0", "libuuid1",
    "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1",
)
_FIX = "run `bash tools/install-system-deps.sh` (it adds the arm64 architecture to apt)"


def aarch64_root(cache: Path) -> Path:
    """The userland under ``cache/root``, assembled on first use."""
    root = cache / "root"
    if (root / PYTHON).is_file():
        return root
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise EmulationError(f"assembling the aarch64 userland needs {tool} (a Debian or Ubuntu machine)")
    cache.mkdir(parents=True, exist_ok=True)
    log.info("assembling the aarch64 userland in %s (once)", root)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        debs, staging = Path(tmp, "debs"), Path(tmp, "root")
        debs.mkdir()
        got = subprocess.run(["apt-get", "download", *(f"{p}:arm64" for p in PACKAGES)], cwd=debs,
                             capture_output=True, text=True)
        if got.returncode != 0:
            reason = (got.stderr.strip().splitlines() or ["no output"])[-1]
            raise EmulationError(f"cannot download the arm64 Debian packages ({reason}); {_FIX}")
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True, capture_output=True)
        if not (staging / PYTHON).is_file():
            raise EmulationError(f"the arm64 packages did not provide {PYTHON}; {_FIX}")
        staging.rename(root)
    return root
