"""Keys, a device store and signed tiny releases for the flash tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_os.deploy import keys
from tests.integration.deploy.helpers import edge_os


@pytest.fixture
def signer(tmp_path):
    """(private, public) key files the device trusts."""
    return keys.generate(tmp_path / "keys" / "release")


@pytest.fixture
def device(tmp_path, signer):
    """A simulated device store trusting ``signer``; returns its root."""
    root = tmp_path / "device"
    result = edge_os("device", "init", root, "--trust", signer[1], "--memory-budget", "2G", "--health-timeout", "120")
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="session")
def tiny_pair(tiny_package_factory):
    """Two different tiny models (different weights, same library): releases of one model name."""
    return tiny_package_factory("q4f32"), tiny_package_factory("q4f32", seed=1)


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on 127.0.0.1 (Debian's openssh-server) accepting one throw-away key."""
    from tests.integration.deploy.sshd import SSHD, Sshd

    if not Path(SSHD).exists():
        pytest.fail("sshd is missing; run `bash tools/install-system-deps.sh` (openssh-server)")
    server = Sshd(tmp_path / "sshd").start()
    yield server
    server.stop()
