"""`edge-os flash PACKAGE ssh://user@host:port/ROOT` through a real sshd on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.integration.deploy.helpers import (
    EDGE_OS,
    edge_os,
    install_twice_sending_only_the_new_shard,
    one_error_line,
    release,
    tree_snapshot,
)


def ssh_flash(sshd, package, root, *extra):
    return edge_os("flash", package, sshd.url(root), "--json", "--remote-command", EDGE_OS, *sshd.options(), *extra)


def test_flash_over_ssh_installs_and_resends_nothing_unchanged(tmp_path, sshd, device, signer, tiny_pair):
    install_twice_sending_only_the_new_shard(lambda package, root: ssh_flash(sshd, package, root), tmp_path, device,
                                             signer[0], tiny_pair)


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
