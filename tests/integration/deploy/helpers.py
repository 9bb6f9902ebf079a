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


def install_twice_sending_only_the_new_shard(flash, tmp_path: Path, device: Path, key: Path, tiny_pair) -> None:
    """``flash(package, device)`` installs v1 with every step, then v2, of which only the weights
    shard crosses the wire (model.so and tokenizer.json are shared with v1)."""
    v1 = release(tiny_pair[0], tmp_path / "v1", key, 1)
    run = flash(v1, device)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["event"] for e in events] == ["preflight", "transfer", "stage", "verify", "switch", "health",
                                            "commit", "result"]
    assert events[-1]["result"] == "installed"
    v2 = release(tiny_pair[1], tmp_path / "v2", key, 2)
    run = flash(v2, device)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    shard = (v2 / "weights" / "shard-00000.bin").stat().st_size
    assert shard <= result["sent_bytes"] < shard + 4 * (v2 / "manifest.json").stat().st_size
    assert status(device)["tiny"]["version"] == 2
