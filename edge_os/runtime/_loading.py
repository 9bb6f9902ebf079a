"""What ``Engine.load`` checks and reads besides the weights: the tokenizer from the verified
package, and whether the KV cache fits in the memory available now."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from edge_os.errors import InputError, PackageError
from edge_os.package.manifest import Manifest
from edge_os.package.reader import verified_bytes
from edge_os.runtime.runner import CacheShape


def tokenizer_from(package_dir: Path, manifest: Manifest) -> Tokenizer:
    text = verified_bytes(package_dir, manifest, manifest.tokenizer["file"])
    try:
        return Tokenizer.from_str(text.decode("utf-8"))
    except Exception as exc:  # the tokenizers library raises bare Exceptions for malformed documents
        raise PackageError(f"package {package_dir}: {manifest.tokenizer['file']} is not a usable tokenizer "
                           f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}); "
                           "re-pack the model") from None


def check_kv_fits(manifest: Manifest, shape: CacheShape) -> None:
    """Refuse a KV cache that cannot fit in the memory available now, before TVM allocates it."""
    need = manifest.memory.kv_bytes_per_token * shape.max_total_tokens
    available = available_memory()
    if available is not None and need > available:
        raise InputError(
            f"{manifest.name} needs {need >> 20} MiB of KV cache for {shape.max_total_tokens} tokens but only "
            f"{available >> 20} MiB of memory is available; use a smaller context (--ctx)"
        )


def available_memory() -> int | None:
    """MemAvailable in bytes, or None where /proc/meminfo cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
