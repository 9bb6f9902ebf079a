"""Targets as an installed edge-os sees them, and packing for devices this machine is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.integration.test_cli import EDGE_OS, assert_one_line_error, edge_os, leftovers

REPO = Path(__file__).resolve().parents[2]


def test_a_cross_pack_without_the_cross_compiler_names_the_package_before_any_work(tmp_path, tiny_hf_folder):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "EDGE_OS_HOME": str(tmp_path / "home")}
    out = tmp_path / "pkgs" / "rpi5"
    result = edge_os("pack", tiny_hf_folder, "--target", "rpi5", "--out", out, "--no-progress", env=env, timeout=60)
    assert_one_line_error(result, "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu", "tools/install-system-deps.sh")
    assert "quantizing" not in result.stderr and "compiling" not in result.stderr  # nothing was started
    assert not out.parent.exists() or not leftovers(out.parent)


def test_pack_accepts_a_users_descriptor_file_and_refuses_a_missing_one(tmp_path, tiny_hf_folder):
    result = edge_os("pack", tiny_hf_folder, "--target", tmp_path / "nope.toml", "--out", tmp_path / "p")
    assert_one_line_error(result, "nope.toml does not exist")
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_the_wheel_installed_into_a_fresh_venv_finds_its_targets_and_packs(tmp_path, tiny_hf_folder):
    """Not editable: the wheel is built (setuptools in an isolated build, as `pip install` does), installed with --no-deps into a new virtual environment
    that borrows the dev environment's dependencies (nothing is downloaded), and run from a
    directory where the source tree is not importable."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(wheels), str(REPO)], check=True, timeout=300)
    wheel = next(wheels.glob("edge_os-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    fresh_python = venv / "bin" / "python"
    site = subprocess.run([fresh_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dev environment's packages (tvm, numpy, ...) come after the fresh site-packages; its
    # editable edge-os is a .pth hook, which is not run for a directory added this way.
    Path(site, "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh_python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)

    run = lambda *args: subprocess.run([str(venv / "bin" / "edge-os"), *map(str, args)], cwd=tmp_path,  # noqa: E731
                                       capture_output=True, text=True, timeout=600,
                                       env={**os.environ, "EDGE_OS_HOME": str(tmp_path / "home")})
    where = subprocess.run([fresh_python, "-c", "import edge_os; print(edge_os.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(site), where
    assert "rpi5" in run("pack", "--help").stdout
    package = tmp_path / "pkg"
    packed = run("pack", tiny_hf_folder, "--out", package, "--no-progress")
    assert packed.returncode == 0, packed.stderr
    assert json.loads((package / "manifest.json").read_text())["target"]["name"] == "host"
    answer = run("generate", "-m", package, "hi", "--max-tokens", "3", "--temperature", "0", "--ignore-eos", "--json")
    assert answer.returncode == 0, answer.stderr
    assert len(json.loads(answer.stdout)["token_ids"]) == 3
