"""`edge-os flash PACKAGE file://ROOT` on a simulated device: install, refusals, rollback, resume."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from edge_os.deploy import keys
from edge_os.deploy.install import Installer
from edge_os.deploy.store import Store, package_files
from tests.integration.deploy.helpers import (
    edge_os,
    edit_manifest,
    one_error_line,
    rehash,
    release,
    status,
    tree_snapshot,
)


def flash(package, root, *extra):
    return edge_os("flash", package, f"file://{root}", "--json", *extra)


def result_of(run) -> dict:
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return lines[-1]


def answer(package) -> bool:
    """The package loads and produces three greedy tokens for a prompt."""
    from edge_os.runtime.engine import Engine
    from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams

    engine = Engine.load(package, context_tokens=64, max_batch=1)
    try:
        request = GenerationRequest(prompt="Hi", sampling=SamplingParams(temperature=0), max_tokens=3, ignore_eos=True)
        final = next(e for e in engine.generate(request) if isinstance(e, Finished))
        return final.usage.completion_tokens == 3 and len(final.token_ids) == 3
    finally:
        engine.close()


def test_flash_installs_switches_and_keeps_the_previous_slot(tmp_path, device, signer, tiny_pair):
    v1 = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    v2 = release(tiny_pair[1], tmp_path / "v2", signer[0], 2)
    run = flash(v1, device)
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["event"] for line in run.stdout.splitlines()] == [
        "preflight", "transfer", "stage", "verify", "switch", "health", "commit", "result"]
    assert result_of(run)["result"] == "installed"
    assert flash(v2, device).returncode == 0
    model = status(device)["tiny"]
    assert (model["version"], model["other_version"], model["other_is_good"]) == (2, 1, True)
    assert model["last_install"]["result"] == "installed" and "answered" in model["last_install"]["reason"]
    assert edge_os("verify", model["package"], "--trust", signer[1]).returncode == 0
    assert answer(model["package"])
    # Only files of the two slots stay in the store.
    store = Store(device)
    assert {p.name for p in (device / "objects").iterdir()} == store.referenced_objects()
    back = edge_os("device", "rollback", device, "tiny")
    assert back.returncode == 0, back.stderr
    assert status(device)["tiny"]["version"] == 1


def test_reflashing_the_same_package_changes_nothing(tmp_path, device, signer, tiny_pair):
    v1 = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    assert flash(v1, device).returncode == 0
    again = flash(v1, device)
    assert again.returncode == 0 and result_of(again)["result"] == "unchanged"


def test_a_manifest_only_change_sends_no_file_again(tmp_path, device, signer, tiny_pair):
    v1 = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    v2 = release(tiny_pair[0], tmp_path / "v2", signer[0], 2, context_length=256)
    assert flash(v1, device).returncode == 0
    run = flash(v2, device)
    assert run.returncode == 0, run.stderr
    result = result_of(run)
    manifest, sig = package_files(v2)
    assert result["sent_bytes"] == 2 * (len(manifest) + len(sig))  # the manifest and signature, nothing else
    assert status(device)["tiny"]["version"] == 2


def _refused(run, device, before, *fragments):
    line = one_error_line(run)
    for fragment in fragments:
        assert fragment in line, line
    assert tree_snapshot(device) == before, "a refused package changed the device"
    return line


def test_tampered_packages_are_refused_and_nothing_is_installed(tmp_path, device, signer, tiny_pair):
    assert flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device).returncode == 0
    before = tree_snapshot(device)

    flipped = release(tiny_pair[1], tmp_path / "flipped", signer[0], 2)
    shard = flipped / "weights" / "shard-00000.bin"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    _refused(flash(flipped, device), device, before, "shard-00000.bin does not match its sha256")

    edited = release(tiny_pair[1], tmp_path / "edited", signer[0], 2)
    edit_manifest(edited, context_length=64)  # a manifest edited after signing
    _refused(flash(edited, device), device, before, "does not match its signature")

    other_key = keys.generate(tmp_path / "attacker")[0]
    resigned = release(tiny_pair[1], tmp_path / "resigned", other_key, 2)
    _refused(flash(resigned, device), device, before, "not trusted")

    extra = release(tiny_pair[1], tmp_path / "extra", signer[0], 2)
    (extra / "weights" / "payload.so").write_bytes(b"\x7fELF")
    _refused(flash(extra, device), device, before, "payload.so is not listed in the manifest")

    unsigned = release(tiny_pair[1], tmp_path / "unsigned", signer[0], 2)
    (unsigned / "manifest.sig").unlink()
    _refused(flash(unsigned, device), device, before, "unsigned")

    older = release(tiny_pair[1], tmp_path / "older", signer[0], 1)
    assert flash(release(tiny_pair[1], tmp_path / "v3", signer[0], 3), device).returncode == 0
    before = tree_snapshot(device)
    _refused(flash(older, device), device, before, "older than the installed version 3", "--allow-downgrade")
    assert flash(older, device, "--allow-downgrade").returncode == 0
    assert status(device)["tiny"]["version"] == 1


def test_a_package_for_another_machine_or_too_big_is_refused(tmp_path, device, signer, tiny_pair):
    data = json.loads((tiny_pair[0] / "manifest.json").read_text())
    arm = release(tiny_pair[0], tmp_path / "arm", signer[0], 1,
                  target={**data["target"], "name": "rk3588", "arch": "aarch64"})
    before = tree_snapshot(device)
    _refused(flash(arm, device), device, before, "compiled for rk3588 (aarch64)")
    huge = release(tiny_pair[0], tmp_path / "huge", signer[0], 1,
                   memory={**data["memory"], "weight_bytes": 64 << 30})
    _refused(flash(huge, device), device, before, "over this device's memory budget")
    small = tmp_path / "small-disk"
    assert edge_os("device", "init", small, "--trust", signer[1], "--memory-budget", "2G",
                   "--disk-budget", "100K").returncode == 0
    before = tree_snapshot(small)
    _refused(flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), small), small, before, "MiB free")


def test_a_model_that_cannot_run_is_rolled_back_with_the_reason(tmp_path, device, signer, tiny_pair):
    assert flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device).returncode == 0
    broken = tmp_path / "broken-src"
    shutil.copytree(tiny_pair[1], broken)
    (broken / "model.so").write_bytes(b"not a shared library")
    rehash(broken, "model.so")
    run = flash(release(broken, tmp_path / "broken", signer[0], 2), device)
    line = one_error_line(run)
    assert "version 2 was not kept: health check failed" in line and "still runs version 1" in line
    model = status(device)["tiny"]
    assert model["version"] == 1 and model["last_install"]["result"] == "rolled back"
    assert "failed to load" in model["last_install"]["reason"]
    assert answer(model["package"])


def test_a_hanging_health_check_is_killed_and_rolled_back(tmp_path, signer, tiny_pair):
    root = tmp_path / "slow-device"
    assert edge_os("device", "init", root, "--trust", signer[1], "--memory-budget", "2G").returncode == 0
    assert flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), root).returncode == 0
    config = json.loads((root / "device.json").read_text())
    (root / "device.json").write_text(json.dumps({**config, "health_timeout": 0.05}))
    line = one_error_line(flash(release(tiny_pair[1], tmp_path / "v2", signer[0], 2), root))
    assert "hung" in line
    assert status(root)["tiny"]["version"] == 1


def test_over_the_memory_budget_at_run_time_is_rolled_back(tmp_path, signer, tiny_pair):
    # The manifest's figures fit 20 MiB, the running process does not: the check measures RSS.
    root = tmp_path / "small-device"
    assert edge_os("device", "init", root, "--trust", signer[1], "--memory-budget", "20M").returncode == 0
    line = one_error_line(flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), root))
    assert "over the device's memory budget of 20 MiB" in line
    assert status(root)["tiny"]["version"] is None  # a first install that failed leaves nothing active


def test_an_interrupted_transfer_resumes(tmp_path, device, signer, tiny_pair):
    v1 = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    manifest, sig = package_files(v1)
    store = Store(device)
    with store.locked():
        installer = Installer(store)
        plan = installer.preflight(manifest, sig)
        biggest = max(plan.missing, key=lambda sha: plan.missing[sha]["size"])
        rel = next(r for r, info in plan.files.items() if info["sha256"] == biggest)
        half = (v1 / rel).read_bytes()[: plan.missing[biggest]["size"] // 2]
        installer.receive(biggest, 0, half)
    run = flash(v1, device)
    assert run.returncode == 0, run.stderr
    result = result_of(run)
    assert result["resumed_bytes"] == len(half)
    assert result["sent_bytes"] <= result["package_bytes"] + len(manifest) + len(sig) - len(half)


def test_a_lock_of_a_dead_installer_is_not_waited_on(tmp_path, device, signer, tiny_pair):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from edge_os.deploy.store import Store\n"
        f"s = Store({str(device)!r})\n"
        "with s.locked():\n    print('locked', flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    busy = Store(device)
    with pytest.raises(Exception, match=f"busy: pid {holder.pid}"), busy.locked(wait_s=0.2):
        pass
    holder.kill()
    holder.wait()
    assert flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device).returncode == 0


def test_recovery_discards_a_half_staged_slot_and_temporary_files(tmp_path, device, signer, tiny_pair):
    assert flash(release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device).returncode == 0
    model_dir = device / "models" / "tiny"
    state = json.loads((model_dir / "state.json").read_text())
    state["trial"] = {"slot": "b", "previous": "a", "version": 2, "phase": "stage"}
    (model_dir / "state.json").write_text(json.dumps(state))
    (model_dir / "b").mkdir()
    (model_dir / "b" / "model.so").write_bytes(b"half")
    (model_dir / ".tmp-stage-b").mkdir()
    (device / "objects" / ".tmp-x").write_bytes(b"x")
    os.symlink("b", model_dir / ".tmp-current-1")
    run = edge_os("device", "fsck", device)
    assert run.returncode == 0, run.stderr
    assert "interrupted install of version 2 undone" in run.stdout
    assert sorted(p.name for p in model_dir.iterdir()) == ["a", "current", "state.json"]
    assert not list((device / "objects").glob(".tmp-*"))
    assert status(device)["tiny"]["last_install"]["result"] == "interrupted"
