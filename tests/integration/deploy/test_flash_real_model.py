"""The bundled SmolLM2-135M flashed over a real sshd: installed, health-checked, and re-flashed with
a manifest-only change that sends under 1% of its bytes."""

from __future__ import annotations

import json

import pytest

from tests.integration.deploy.helpers import release, status
from tests.integration.deploy.test_flash_ssh import ssh_flash


@pytest.mark.slow
def test_default_model_over_ssh_and_a_manifest_only_reflash(tmp_path, sshd, device, signer, default_package):
    v1 = release(default_package, tmp_path / "v1", signer[0], 1, name="smollm2")
    run = ssh_flash(sshd, v1, device, "--no-progress")
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout.splitlines()[-1])
    assert first["result"] == "installed" and first["sent_bytes"] >= first["package_bytes"] - 4096
    v2 = release(default_package, tmp_path / "v2", signer[0], 2, name="smollm2", context_length=1024)
    run = ssh_flash(sshd, v2, device, "--no-progress")
    assert run.returncode == 0, run.stderr
    second = json.loads(run.stdout.splitlines()[-1])
    print(f"\nfirst flash sent {first['sent_bytes']} bytes; manifest-only re-flash sent {second['sent_bytes']} of "
          f"{second['package_bytes']} ({100 * second['sent_bytes'] / second['package_bytes']:.3f}%); "
          f"health: {second['health']}")
    assert second["sent_bytes"] < 0.01 * second["package_bytes"]
    model = status(device)["smollm2"]
    assert model["version"] == 2 and model["last_install"]["result"] == "installed"
