"""The model store through the real `edge-os` command: pull, list, rm, prune, names for -m/--models,
a served model that rm refuses, and a pull killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import EDGE_OS, assert_one_line_error
from tests.simulated_sysfs import SimulatedDevice, SimZone, ThermalModel
from tests.waiting import wait_for_output, wait_until


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args, timeout=300):
    env = {**os.environ, "EDGE_OS_HOME": str(home)}
    return subprocess.run([EDGE_OS, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def ok(home: Path, *args) -> str:
    result = run(home, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed(home: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(ok(home, "list", "--json"))}


def store_files(home: Path, part: str) -> list[Path]:
    folder = home / "store" / part
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_pull_a_gguf_and_use_it_by_name(home, tmp_path):
    from tests.tiny_model import write_gguf

    tensors = write_gguf(tmp_path / "Tiny-Chat.Q4_1.gguf")
    out = ok(home, "pull", tmp_path / "Tiny-Chat.Q4_1.gguf", "--no-progress")
    assert out.startswith("tiny-chat.q4_1:latest ")  # the name comes from the file's
    row = listed(home)["tiny-chat.q4_1:latest"]
    parameters = sum(array.size for array in tensors.values())  # what the GGUF was made from
    assert (row["architecture"], row["parameters"], row["target"]) == ("llama", parameters, "host")
    assert row["quantization"].startswith("auto (") and row["last_used"] is None
    assert row["size_bytes"] > 0

    generated = json.loads(ok(home, "generate", "-m", "tiny-chat.q4_1", "hi", "--max-tokens", "3",
                              "--temperature", "0", "--ignore-eos", "--json"))
    assert generated["usage"]["completion_tokens"] == 3
    assert listed(home)["tiny-chat.q4_1:latest"]["last_used"] is not None
    info = json.loads(ok(home, "info", "tiny-chat.q4_1:latest", "--json", "--verify"))
    assert info["verified"] is True and info["name"] == "tiny-chat.q4_1"


def test_two_names_for_the_same_weights_cost_the_disk_once(home, tiny_package):
    ok(home, "pull", tiny_package, "--name", "a")
    ok(home, "pull", "a", "--name", "b:v2")  # a name as the source
    rows = listed(home)
    assert set(rows) == {"a:latest", "b:v2"}
    pa, pb = Path(rows["a:latest"]["package"]), Path(rows["b:v2"]["package"])
    assert pa != pb  # each name has its own manifest (its own name in it) ...
    for rel in json.loads((tiny_package / "manifest.json").read_text())["files"]:
        assert (pa / rel).stat().st_ino == (pb / rel).stat().st_ino  # ... over the same files
    blobs = store_files(home, "blobs")
    assert len(blobs) == len(json.loads((tiny_package / "manifest.json").read_text())["files"])

    assert "removed a:latest" in ok(home, "rm", "a")
    assert json.loads(ok(home, "info", "b:v2", "--json", "--verify"))["verified"] is True
    ok(home, "rm", "b:v2")
    assert listed(home) == {}
    assert store_files(home, "blobs") == [] and store_files(home, "packages") == []


def test_an_unknown_name_lists_the_names_there_are(home, tiny_package):
    ok(home, "pull", tiny_package, "--name", "tiny")
    for argv in (["generate", "-m", "tinny", "hi"], ["rm", "tinny"], ["info", "tinny"],
                 ["serve", "--models", "tinny"]):
        assert_one_line_error(run(home, *argv), "no model named tinny:latest", "have: tiny:latest")


def test_bad_names_and_sources_are_one_line(home, tiny_package, tmp_path):
    assert_one_line_error(run(home, "pull", tiny_package, "--name", "Big Model"), "not a model name")
    assert_one_line_error(run(home, "pull", tmp_path / "nothing.gguf"), "does not exist")
    assert_one_line_error(run(home, "pull", tiny_package, "--target", "rpi5"), "is a package for host")
    assert listed(home) == {}


def test_a_corrupted_package_is_refused_on_the_way_in(home, tiny_package, tmp_path):
    import shutil

    copy = shutil.copytree(tiny_package, tmp_path / "copy")
    shard = copy / "weights" / "shard-00000.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert_one_line_error(run(home, "pull", copy, "--name", "bad"), "does not match its sha256")
    assert listed(home) == {}
    assert store_files(home, "blobs") == [] and store_files(home, "tmp") == []


def test_rm_refuses_a_model_that_serve_uses(home, tiny_package, tmp_path):
    ok(home, "pull", tiny_package, "--name", "served")
    device = SimulatedDevice(tmp_path / "dev", zones=(SimZone("cpu-thermal"),), model=ThermalModel(temp_c=45.0))
    proc = subprocess.Popen(
        [EDGE_OS, "serve", "--models", "served", "--memory-budget", "1G", "--target", "rpi5",
         "--thermal-root", str(device.thermal_dir), "--power-root", str(device.power_dir),
         "--meminfo", str(device.meminfo_path), "--socket", str(tmp_path / "edge.sock")],
        stderr=subprocess.PIPE, bufsize=0,
        env={**os.environ, "EDGE_OS_HOME": str(home), "EDGE_OS_LOG_LEVEL": "INFO"},
    )
    try:
        wait_for_output(proc.stderr, "serving served")
        assert_one_line_error(run(home, "rm", "served"), "in use by a running edge-os process")
        ok(home, "prune")
        assert json.loads(ok(home, "info", "served", "--json", "--verify"))["verified"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        proc.stderr.close()
    ok(home, "rm", "served")
    assert listed(home) == {}


def test_a_pull_killed_midway_leaves_a_consistent_store(home, tiny_package, tiny_hf_folder):
    ok(home, "pull", tiny_package, "--name", "kept")
    before = sorted(p.name for p in store_files(home, "blobs"))
    proc = subprocess.Popen([EDGE_OS, "pull", tiny_hf_folder, "--name", "half", "--quant", "q8f32", "--no-progress"],
                            stderr=subprocess.PIPE, bufsize=0, env={**os.environ, "EDGE_OS_HOME": str(home)})
    try:
        wait_for_output(proc.stderr, "compiling")  # weights written, compiler running: mid-pull
        work = wait_until(lambda: store_files(home, "tmp"), 10, what="the pull's work dir")
        assert any(work[0].rglob("shard-*.bin"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()

    rows = listed(home)  # every store command tidies first
    assert set(rows) == {"kept:latest"}
    assert store_files(home, "tmp") == []
    assert sorted(p.name for p in store_files(home, "blobs")) == before
    assert json.loads(ok(home, "info", "kept", "--json", "--verify"))["verified"] is True
    ok(home, "pull", tiny_package, "--name", "half")
    assert set(listed(home)) == {"kept:latest", "half:latest"}


def test_an_rm_killed_after_forgetting_the_name_is_finished_by_the_next_command(home, tiny_package):
    ok(home, "pull", tiny_package, "--name", "gone")
    (home / "store" / "refs" / "gone:latest").unlink()  # where a kill between rm's two steps leaves it
    assert listed(home) == {}
    assert store_files(home, "packages") == [] and store_files(home, "blobs") == []


def test_prune_removes_stale_default_packages_and_keeps_the_current_one(home, monkeypatch):
    from edge_os.default_model import _package_dir, bundled_gguf

    monkeypatch.setenv("EDGE_OS_HOME", str(home))
    current = _package_dir(bundled_gguf(), "auto", "host", "auto")
    stale = home / "packages" / "smollm2-135m-auto-host-0123456789ab"
    other = home / "packages" / "my-notes"
    for folder in (current, stale, other):
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    out = ok(home, "prune")
    assert f"removed {stale}" in out and "pruned 1 package(s)" in out
    assert current.is_dir() and other.is_dir() and not stale.exists()


def test_store_commands_are_listed_in_help():
    result = subprocess.run([sys.executable, "-m", "edge_os", "--help"], capture_output=True, text=True)
    for command in ("pull", "list", "rm", "prune"):
        assert f"    {command}" in result.stdout


def test_pull_a_sharded_bf16_folder_with_a_generation_config(home, tmp_path):
    import numpy as np

    from tests.tiny_model import stored_values, tiny_config, tiny_weights, write_hf_folder

    folder = write_hf_folder(tmp_path / "Tiny-BF16", seed=5, dtype="BF16", shards=2,
                             generation_config={"eos_token_id": [0, 2]})
    ok(home, "pull", folder, "--quant", "f32", "--no-progress")
    package = Path(listed(home)["tiny-bf16:latest"]["package"])
    manifest = json.loads((package / "manifest.json").read_text())
    assert {0, 2} <= set(manifest["stop_token_ids"])
    expected = stored_values(tiny_weights(tiny_config(), seed=5)["model.norm.weight"], "BF16")
    entry = next(p for p in manifest["params"] if p["name"] == "model.norm.weight")
    raw = (package / entry["shard"]).read_bytes()[entry["offset"]:entry["offset"] + entry["nbytes"]]
    np.testing.assert_array_equal(np.frombuffer(raw, dtype=np.float32), expected)
    generated = json.loads(ok(home, "generate", "-m", "tiny-bf16", "hi", "--max-tokens", "2", "--temperature", "0",
                              "--ignore-eos", "--json"))
    assert generated["usage"]["completion_tokens"] == 2
