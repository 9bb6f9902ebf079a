"""Targets as an installed edge-os sees them, and packing for devices this machine is not."""

from __future__ import annotations

import json
import os
import re
import shutil
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


def test_emulate_refuses_a_host_target_and_a_missing_command(tmp_path):
    env = {**os.environ, "EDGE_OS_HOME": str(tmp_path)}
    host = edge_os("emulate", "--target", "host", "--", "--version", env=env)
    assert host.returncode == 1 and "emulate runs aarch64 targets" in host.stderr
    empty = edge_os("emulate", "--target", "rpi5", env=env)
    assert empty.returncode == 1 and "needs an edge-os command after --" in empty.stderr
    no_qemu = subprocess.run([EDGE_OS, "emulate", "--target", "rpi5", "--", "--version"], capture_output=True,
                             text=True, env={**env, "PATH": str(tmp_path)}, timeout=60)
    assert no_qemu.returncode == 1 and "qemu-user-static" in no_qemu.stderr
    assert not (tmp_path / "emulate").exists()  # nothing was assembled


@pytest.mark.slow
def test_the_wheel_installed_into_a_fresh_venv_finds_its_targets_and_packs(tmp_path, tiny_hf_folder):
    """Not editable: the wheel is built (setuptools in an isolated build, as `pip install` does),
    installed with --no-deps into a new virtual environment that borrows the dev environment's
    dependencies (nothing big is downloaded), and run from a directory where the source tree is
    not importable."""
    source = tmp_path / "source"  # a copy: setuptools writes build/ and *.egg-info next to setup.py
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "*.whl"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(wheels), str(source)], check=True, timeout=300)
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


@pytest.mark.slow
def test_a_bundles_install_sh_installs_a_runtime_that_runs_a_package(tmp_path, tiny_package):
    """The bundle for this machine's own architecture, so its install.sh runs here for real:
    a virtual environment from the bundle's wheels alone (--no-index), then a generate with it."""
    bundle = tmp_path / "bundle"
    made = edge_os("bundle", "--target", "host", "--out", bundle, timeout=600)
    assert made.returncode == 0, made.stderr
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["arch"] == "x86_64" and any(w.startswith("apache_tvm-") for w in meta["wheels"])
    assert not any(w.startswith(("gguf-", "safetensors-")) for w in meta["wheels"])  # packing stays off devices
    again = edge_os("bundle", "--target", "host", "--out", bundle)
    assert_one_line_error(again, "already exists")
    dest = tmp_path / "device"
    installed = subprocess.run(["sh", str(bundle / "install.sh"), str(dest)], capture_output=True, text=True,
                               timeout=900, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert installed.returncode == 0, installed.stderr
    answer = subprocess.run([str(dest / "bin" / "edge-os"), "generate", "-m", str(tiny_package), "hi", "--json",
                             "--max-tokens", "3", "--temperature", "0", "--ignore-eos"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    assert len(json.loads(answer.stdout)["token_ids"]) == 3


def _readelf(*args) -> str:
    return subprocess.run(["readelf", "-W", *map(str, args)], capture_output=True, text=True, check=True).stdout


def _pack_for(target: str, source: Path, out: Path) -> dict:
    packed = edge_os("pack", source, "--target", target, "--out", out, "--no-progress", timeout=900)
    assert packed.returncode == 0, packed.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.slow
def test_an_android_library_needs_only_what_every_android_device_has(tmp_path, tiny_hf_folder):
    package = tmp_path / "android"
    manifest = _pack_for("android-arm64", tiny_hf_folder, package)
    assert manifest["target"]["tvm_target"]["mtriple"] == "aarch64-linux-android"
    library = package / "model.so"
    assert "AArch64" in _readelf("-h", library)
    needed = {line.split("[")[1].rstrip("]") for line in _readelf("-d", library).splitlines() if "(NEEDED)" in line}
    assert needed and needed <= {"libc.so", "libm.so", "libdl.so", "liblog.so"}, needed
    assert "GLIBC" not in _readelf("-V", library) + _readelf("--dyn-syms", library)


def _cuda_kernels(library: Path) -> dict[str, str]:
    """The CUDA C kernels a GPU package's library embeds (TVM keeps them as source): name -> body."""
    text = library.read_bytes().decode("latin-1")
    kernels = {}
    for chunk in text.split("__global__")[1:]:
        name = re.match(r"\s*void\s+(?:__launch_bounds__\(\d+\)\s+)?(\w+)\(", chunk)
        assert name, chunk[:200]
        kernels[name.group(1)] = chunk.partition("{")[2].split("\n}\n")[0]
    return kernels


@pytest.mark.slow
def test_a_jetson_package_has_cuda_kernels_bound_to_gpu_threads(tmp_path, tiny_hf_folder):
    package = tmp_path / "jetson"
    manifest = _pack_for("jetson-orin", tiny_hf_folder, package)
    assert manifest["target"]["tvm_target"]["kind"] == "cuda" and manifest["target"]["arch"] == "aarch64"
    library = package / "model.so"
    assert "AArch64" in _readelf("-h", library)  # the host code, cross-linked
    kernels = _cuda_kernels(library)
    assert any("matmul" in name for name in kernels) and any("attention" in name or "kv" in name for name in kernels)
    unbound = [name for name, body in kernels.items() if "threadIdx" not in body and "blockIdx" not in body]
    assert not unbound, unbound
    refused = edge_os("generate", "-m", package, "hi")
    assert_one_line_error(refused, "compiled for jetson-orin (aarch64)")


@pytest.mark.slow
def test_a_cuda_package_runs_on_the_manifests_device_and_a_cpu_only_runtime_says_so(tmp_path, tiny_hf_folder):
    package = tmp_path / "cuda"
    manifest = _pack_for("cuda", tiny_hf_folder, package)
    assert manifest["target"]["arch"] == "x86_64" and _cuda_kernels(package / "model.so")
    refused = edge_os("generate", "-m", package, "hi")  # PyPI's TVM runtime has no CUDA
    assert_one_line_error(refused, "runs on a CUDA GPU", "USE_CUDA=ON")
