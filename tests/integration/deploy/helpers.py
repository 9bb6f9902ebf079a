"""Signed releases of the tiny packages, device stores, and the CLI, for the flash tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

EDGE_OS = str(Path(sys.executable).parent / "edge-os")


def edge_os(*args, timeout=300, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([EDGE_OS, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, **kwargs)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("edge-os: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def edit_manifest(package: Path, **fields) -> None:
    data = json.loads((package / "manifest.json").read_text())
    data.update(fields)
    (package / "manifest.json").write_text(json.dumps(data, indent=1, sort_keys=True))


def rehash(package: Path, rel: str) -> None:
    """Record a changed file's new sha256 and size in the manifest (as a careless packer would)."""
    data = json.loads((package / "manifest.json").read_text())
    content = (package / rel).read_bytes()
    data["files"][rel] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    (package / "manifest.json").write_text(json.dumps(data, indent=1, sort_keys=True))


def release(source: Path, dest: Path, key: Path, version: int, name: str = "tiny", **fields) -> Path:
    """A copy of ``source`` named ``name``, signed by ``key`` as ``version``."""
    from edge_os.deploy.signing import sign_package

    shutil.copytree(source, dest)
    (dest / "manifest.sig").unlink(missing_ok=True)
    edit_manifest(dest, name=name, **fields)
    sign_package(dest, key, version=version)
    return dest


def status(root: Path) -> dict:
    result = edge_os("device", "status", root, "--json")
    assert result.returncode == 0, result.stderr
    return {m["name"]: m for m in json.loads(result.stdout)["models"]}


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under a store (the lock file aside) with its content, to show nothing changed."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if not p.is_symlink() else str(p.readlink()).encode())
            for p in sorted(root.rglob("*")) if (p.is_file() or p.is_symlink()) and p.name != "lock"}
