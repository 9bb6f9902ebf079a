"""How a compiled library is linked for a target: by TVM's default (this machine's ``g++``), by a
cross compiler (``aarch64-linux-gnu-gcc``), or, for Android, against the device's own libraries.

Android's dynamic linker wants no glibc symbol versions and only libraries every device has. The
objects TVM writes are linked with ``-nostdlib`` (nothing of a host libc comes in) against empty
stand-ins named like the device's ``libc.so``, ``libm.so``, ... (so the library records them as
needed, unversioned); the device's copies resolve the symbols when the app loads it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def command(cross_cc: str) -> list[str]:
    """The compiler command line of a descriptor's ``cross_cc``, its program resolved on PATH or
    next to this Python (a virtual environment's console scripts, e.g. PyPI ziglang's
    ``python-zig``, are there even when the environment is not activated). Empty if not found."""
    program, *args = shlex.split(cross_cc)
    found = shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))
    return [found, *args] if found else []


def export_options(cross_cc: str | None, device_libs: tuple[str, ...] = ()) -> dict:
    """Keyword arguments for ``export_library`` that link with ``cross_cc`` (none: TVM's default)."""
    if not cross_cc:
        return {}
    cc = command(cross_cc)
    if not device_libs and len(cc) == 1:
        return {"cc": cc[0]}

    def fcompile(output, objects, options=None, **_):
        with tempfile.TemporaryDirectory() as tmp:
            stubs = [_stub(cc, Path(tmp), name) for name in device_libs]
            nostdlib = ["-nostdlib"] if device_libs else []
            got = subprocess.run([*cc, *nostdlib, "-shared", "-fPIC", "-o", str(output), *map(str, objects),
                                  *(options or []), "-Wl,--no-as-needed", *map(str, stubs)],
                                 capture_output=True, text=True)
        if got.returncode != 0:
            raise RuntimeError(f"linking {output} with {cross_cc} failed: {got.stderr.strip()[-2000:]}")

    fcompile.output_format = "so"
    return {"fcompile": fcompile}


def _stub(cc: list[str], tmp: Path, soname: str) -> Path:
    """An empty shared library whose SONAME is ``soname``: linking against it records the need."""
    source = tmp / "empty.c"
    source.write_text("")
    stub = tmp / soname
    subprocess.run([*cc, "-nostdlib", "-shared", f"-Wl,-soname,{soname}", "-o", str(stub), str(source)],
                   check=True, capture_output=True)
    return stub
