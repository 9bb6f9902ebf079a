"""`edge-os flash PACKAGE adb://SERIAL/ROOT` through a stand-in `adb` on PATH (this machine has no
phone) that keeps adb's command line: `adb -s SERIAL push` copies the files, `adb -s SERIAL shell`
runs `edge-os device receive` on the device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.deploy.helpers import (
    EDGE_OS,
    edge_os,
    install_twice_sending_only_the_new_shard,
    one_error_line,
    release,
    tree_snapshot,
)

STANDIN = Path(__file__).with_name("adb_standin.py")
SERIAL = "emulator-5554"


@pytest.fixture
def adb_env(tmp_path):
    """An environment whose PATH has the stand-in `adb`, with one attached device, SERIAL."""
    devices = tmp_path / "adb-devices"
    devices.mkdir()
    (devices / SERIAL).write_text("device")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" --devices-dir "{devices}" "$@"\n')
    adb.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def adb_flash(env, package, root, serial=SERIAL, *extra):
    return edge_os("flash", package, f"adb://{serial}{root}", "--json", "--remote-command", EDGE_OS, *extra, env=env)


def test_the_stand_in_keeps_adb_s_command_line(tmp_path, adb_env):
    def adb(*args):
        return subprocess.run(["adb", *args], capture_output=True, text=True, env=adb_env, check=False)

    assert adb("devices").stdout.splitlines()[:2] == ["List of devices attached", f"{SERIAL}\tdevice"]
    (tmp_path / "f").write_text("x")
    assert adb("-s", SERIAL, "push", tmp_path / "f", tmp_path / "d" / "g").returncode == 0
    assert (tmp_path / "d" / "g").read_text() == "x"
    assert adb("-s", SERIAL, "shell", "exit 3").returncode == 3
    unknown = adb("-s", "nope", "shell", "true")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "error: device 'nope' not found"


def test_flash_over_adb_installs_and_sends_only_what_changed(tmp_path, adb_env, device, signer, tiny_pair):
    install_twice_sending_only_the_new_shard(lambda package, root: adb_flash(adb_env, package, root), tmp_path,
                                             device, signer[0], tiny_pair)
    assert not list(device.glob(".tmp-*"))  # every pushed piece was adopted and removed


def test_an_unknown_serial_is_one_line_and_changes_nothing(tmp_path, adb_env, device, signer, tiny_pair):
    before = tree_snapshot(device)
    line = one_error_line(adb_flash(adb_env, release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device, "R58N"))
    assert "adb cannot reach device 'R58N' (error: device 'R58N' not found)" in line and "adb devices" in line
    assert tree_snapshot(device) == before


def test_flash_without_adb_on_path_is_one_line(tmp_path, device, signer, tiny_pair):
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing there
    line = one_error_line(adb_flash(env, release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device))
    assert "adb is not on PATH" in line


def test_the_device_refuses_to_adopt_a_path_outside_its_pieces(device):
    requests = [{"op": "adopt", "name": "../../etc/passwd"}, {"op": "bye"}]
    run = subprocess.run([EDGE_OS, "device", "receive", str(device)], capture_output=True, check=False,
                         input="".join(json.dumps(r) + "\n" for r in requests).encode())
    replies = [json.loads(line) for line in run.stdout.splitlines()]
    assert replies[1]["ok"] is False and "not a pushed piece" in replies[1]["error"]
