"""`edge-os pack --out`: what may be replaced, and what stays when packing stops half-way.

Real `edge-os pack` processes; Ctrl-C is the SIGINT a terminal sends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from tests.integration.test_cli import assert_one_line_error, edge_os, leftovers

EDGE_OS = str(Path(sys.executable).parent / "edge-os")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def imports_of(*args) -> tuple[subprocess.CompletedProcess, set[str]]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    result = subprocess.run([EDGE_OS, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0]
               for line in result.stderr.splitlines()[1:] if line.startswith("import time:")}
    result.stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))
    return result, modules


def test_force_refuses_a_folder_that_is_not_a_package(tmp_path, tiny_hf_folder):
    out = tmp_path / "my-notes"
    out.mkdir()
    (out / "notes.txt").write_text("a year of notes")
    (out / "data").mkdir()
    (out / "data" / "measurements.csv").write_text("1,2,3\n")
    before = snapshot(out)
    result, modules = imports_of("pack", tiny_hf_folder, "--out", out, "--force")
    assert_one_line_error(result, str(out), "not an edge-os package")
    assert "tvm" not in modules  # refused from the path alone, before any work
    assert snapshot(out) == before and not leftovers(tmp_path)


def test_force_refuses_a_file(tmp_path, tiny_hf_folder):
    out = tmp_path / "model.bin"
    out.write_bytes(b"precious")
    assert_one_line_error(edge_os("pack", tiny_hf_folder, "--out", out, "--force"), "not a package directory")
    assert out.read_bytes() == b"precious" and not leftovers(tmp_path)


def test_force_refuses_a_package_holding_other_files(tmp_path, tiny_package):
    out = tmp_path / "pkg"
    out.mkdir()
    for name, data in snapshot(tiny_package).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    (out / "my-eval-results.txt").write_text("keep me")
    before = snapshot(out)
    assert_one_line_error(edge_os("pack", tiny_package.parent, "--out", out, "--force"),
                          "not part of its package", "my-eval-results.txt")
    assert snapshot(out) == before


def test_an_empty_folder_may_receive_a_package(tmp_path, tiny_hf_folder):
    out = tmp_path / "empty"
    out.mkdir()
    result = edge_os("pack", tiny_hf_folder, "--out", out, "--no-progress", "--name", "first")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["name"] == "first"


def test_force_replaces_a_package_and_ctrl_c_keeps_the_old_one(tmp_path, tiny_hf_folder):
    out = tmp_path / "pkg"
    assert edge_os("pack", tiny_hf_folder, "--out", out, "--no-progress", "--name", "old").returncode == 0
    old = snapshot(out)

    # Ctrl-C while the replacement compiles: exit 130, one line, the old package untouched.
    child = subprocess.Popen([EDGE_OS, "pack", str(tiny_hf_folder), "--out", str(out), "--force", "--no-progress",
                              "--name", "new"], stderr=subprocess.PIPE, text=True)
    seen = []
    for line in child.stderr:
        seen.append(line)
        if "compiling" in line:
            child.send_signal(signal.SIGINT)
            break
    rest = child.stderr.read()
    assert child.wait(timeout=300) == 130, "".join(seen) + rest
    assert rest.strip() == "edge-os: interrupted"
    assert snapshot(out) == old and not leftovers(tmp_path)

    result = edge_os("pack", tiny_hf_folder, "--out", out, "--force", "--no-progress", "--name", "new")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["name"] == "new"
    assert edge_os("info", out, "--verify").returncode == 0 and not leftovers(tmp_path)


@pytest.mark.parametrize("existing", [True, False])
def test_header_and_path_errors_come_before_any_compiler_work(tmp_path, existing):
    """An unsupported architecture (Gemma 2, with a Gemma-sized vocabulary, which the full GGUF
    reader takes a minute over) and an existing --out are known from the header and the path."""
    path = tmp_path / "gemma2.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma2")
    writer.add_token_list([f"tok{i}" for i in range(262_144)])
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out = tmp_path / "pkg"
    if existing:
        out.mkdir()
        (out / "x").write_text("x")
    result, modules = imports_of("pack", path, "--out", out)
    if existing:
        assert_one_line_error(result, "already exists", "--force")
    else:
        assert_one_line_error(result, "'gemma2' is not supported", "llama")
    assert "tvm" not in modules
