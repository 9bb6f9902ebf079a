"""`edge-os flash PACKAGE ssh://user@host:port/ROOT` through a real sshd on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.deploy.helpers import EDGE_OS, edge_os, one_error_line, release, status, tree_snapshot


def ssh_flash(sshd, package, root, *extra):
    return edge_os("flash", package, sshd.url(root), "--json", "--remote-command", EDGE_OS, *sshd.options(), *extra)


def test_flash_over_ssh_installs_and_resends_nothing_unchanged(tmp_path, sshd, device, signer, tiny_pair):
    v1 = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    run = ssh_flash(sshd, v1, device)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["event"] for e in events] == ["preflight", "transfer", "stage", "verify", "switch", "health",
                                            "commit", "result"]
    assert events[-1]["result"] == "installed"
    v2 = release(tiny_pair[1], tmp_path / "v2", signer[0], 2)
    run = ssh_flash(sshd, v2, device)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    # model.so and tokenizer.json are shared with v1: only the weights shard crosses the wire.
    shard = (v2 / "weights" / "shard-00000.bin").stat().st_size
    assert shard <= result["sent_bytes"] < shard + 4 * (v2 / "manifest.json").stat().st_size
    assert status(device)["tiny"]["version"] == 2


def test_a_refusal_over_ssh_is_the_device_s_one_line(tmp_path, sshd, device, signer, tiny_pair):
    assert ssh_flash(sshd, release(tiny_pair[1], tmp_path / "v2", signer[0], 2), device).returncode == 0
    before = tree_snapshot(device)
    line = one_error_line(ssh_flash(sshd, release(tiny_pair[0], tmp_path / "v1", signer[0], 1), device))
    assert "older than the installed version 2" in line
    assert tree_snapshot(device) == before


def test_an_unreachable_device_is_one_line(tmp_path, sshd, signer, tiny_pair):
    package = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    line = one_error_line(ssh_flash(sshd, package, Path("/nonexistent/store")))
    assert "closed the connection" in line and "not a device store" in line
