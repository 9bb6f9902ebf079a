"""`edge-os rollout --all` to 20 simulated devices (one `edge-os serve --root ROOT --mqtt URL`
process each, found on a real mosquitto broker by their retained announcements), in three waves,
one device failing its health check; every other running service then serves the new version."""

from __future__ import annotations

import threading

import pytest

from edge_os.deploy.publish import PackageServer
from tests.integration.deploy.helpers import edge_os, one_error_line, release, status
from tests.integration.deploy.serve_root import start_devices
from tests.waiting import wait_until

DEVICES = 20
WEAK = "dev07"  # a memory budget the running model cannot keep: its health check fails


@pytest.mark.slow
def test_rollout_in_three_waves_rolls_back_the_one_failing_device(tmp_path, mosquitto, signer, tiny_pair):
    ids = [f"dev{i:02d}" for i in range(DEVICES)]
    roots = {}
    for device_id in ids:
        roots[device_id] = tmp_path / device_id
        budget = "20M" if device_id == WEAK else "2G"
        assert edge_os("device", "init", roots[device_id], "--trust", signer[1], "--memory-budget", budget,
                       "--health-timeout", "600").returncode == 0
    package = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    server = PackageServer(package, ("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    devices = start_devices(mosquitto, roots, tmp_path, timeout=600)
    try:
        run = edge_os("rollout", package, "--mqtt", mosquitto.url, "--all",
                      "--url", f"http://127.0.0.1:{server.server_address[1]}", "--waves", "2,10",
                      "--max-failures", "1", "--wait", "900", timeout=1200)
        print("\n" + run.stdout)
        line = one_error_line(run)
        assert f"found {DEVICES} devices" in run.stderr
        assert f"1 of {DEVICES} devices were not updated ({WEAK})" in line
        rows = {r.split()[0]: r.split() for r in run.stdout.splitlines()[1:]}
        assert [rows[d][1] for d in ids] == ["1"] * 2 + ["2"] * 8 + ["3"] * 10
        assert rows[WEAK][2:4] == ["rolled", "back"] and "health check failed" in " ".join(rows[WEAK])
        assert all(rows[d][2] == "succeeded" for d in ids if d != WEAK)
        for device_id, device in devices.items():
            model = status(roots[device_id]).get("tiny")
            if device_id == WEAK:
                assert model is None or model["version"] is None
                assert "tiny" not in device.ps()  # it never served the version that failed
            else:
                assert model["version"] == 1
                wait_until(lambda d=device: d.ps().get("tiny", {}).get("version") == 1, 60, interval=0.2,
                           what=f"{device_id}'s running service serving version 1")
            assert device.proc.poll() is None
    finally:
        server.shutdown()
        for device in devices.values():
            device.stop()


def test_rollout_all_with_no_device_on_the_broker_is_one_line(tmp_path, mosquitto, signer, tiny_pair):
    package = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    line = one_error_line(edge_os("rollout", package, "--mqtt", mosquitto.url, "--all", "--url", "http://x:1"))
    assert "no device online" in line and "--devices" in line
