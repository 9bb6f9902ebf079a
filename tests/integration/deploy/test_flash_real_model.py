"""The bundled SmolLM2-135M flashed over a real sshd (installed, health-checked, and re-flashed with
a manifest-only change that sends under 1% of its bytes) and over MQTT to a running `serve --root`."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.integration.deploy.helpers import EDGE_OS, edge_os, release, status
from tests.integration.deploy.serve_root import ask, start_devices
from tests.integration.deploy.test_flash_ssh import ssh_flash
from tests.waiting import wait_until


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


@pytest.mark.slow
def test_default_model_over_mqtt_to_a_running_serve_that_then_answers(tmp_path, mosquitto, device, signer,
                                                                      default_package):
    """`edge-os publish --http` serves the package, a real mosquitto carries the job, and a running
    `edge-os serve --root ROOT --mqtt URL` downloads, installs and then answers with it."""
    v1 = release(default_package, tmp_path / "v1", signer[0], 1, name="smollm2")
    publish = subprocess.Popen([EDGE_OS, "publish", str(v1), "--http", "127.0.0.1:0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    served = None
    try:
        url = re.search(r"at (http://\S+?)/?$", publish.stdout.readline()).group(1)
        served = start_devices(mosquitto, {"board": device}, tmp_path)["board"]
        assert served.ps() == {}  # an empty store: nothing served until the job is done
        run = edge_os("flash", v1, f"{mosquitto.url}/board", "--url", url, "--json", "--wait", "1200", timeout=1300)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout.splitlines()[-1])
        print(f"\nMQTT flash of the default model: downloaded {result['downloaded']} bytes of a "
              f"{result['package_bytes']}-byte package; health: {result['health']}")
        assert result["state"] == "succeeded" and result["version"] == 1
        assert 0.95 * result["package_bytes"] <= result["downloaded"] <= result["package_bytes"]
        wait_until(lambda: served.ps().get("smollm2", {}).get("version") == 1, 60, interval=0.2,
                   what="the running service serving the installed model")
        answer = ask(mosquitto, "board", "What is the capital of France?", max_tokens=16, timeout=600)
        print(f"the device answered: {answer.get('text')!r}")
        assert answer["type"] == "final" and "Paris" in answer["text"], answer
    finally:
        publish.terminate()
        publish.wait(30)
        if served is not None:
            served.stop()
