"""`edge-os rollout` to 20 simulated devices (one `edge-os device ota` process each) on a real
mosquitto broker, in three waves, one device failing its health check."""

from __future__ import annotations

import subprocess
import threading

import pytest

from edge_os.deploy.publish import PackageServer
from tests.integration.deploy.helpers import EDGE_OS, edge_os, one_error_line, release, status

DEVICES = 20
WEAK = "dev07"  # a memory budget the running model cannot keep: its health check fails


@pytest.mark.slow
def test_rollout_in_three_waves_rolls_back_the_one_failing_device(tmp_path, mosquitto, signer, tiny_pair):
    ids = [f"dev{i:02d}" for i in range(DEVICES)]
    agents = []
    try:
        for device_id in ids:
            root = tmp_path / device_id
            budget = "20M" if device_id == WEAK else "2G"
            assert edge_os("device", "init", root, "--trust", signer[1], "--memory-budget", budget,
                           "--health-timeout", "600").returncode == 0
            agents.append(subprocess.Popen([EDGE_OS, "device", "ota", str(root), "--mqtt", mosquitto.url,
                                            "--device-id", device_id], stdout=subprocess.PIPE, text=True))
        for agent in agents:
            assert "waiting for jobs" in agent.stdout.readline()
        package = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
        server = PackageServer(package, ("127.0.0.1", 0))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        run = edge_os("rollout", package, "--mqtt", mosquitto.url, "--devices", ",".join(ids),
                      "--url", f"http://127.0.0.1:{server.server_address[1]}", "--waves", "2,10",
                      "--max-failures", "1", "--wait", "900", timeout=1200)
        server.shutdown()
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(timeout=30)
    print("\n" + run.stdout)
    line = one_error_line(run)
    assert f"1 of {DEVICES} devices were not updated ({WEAK})" in line
    rows = {r.split()[0]: r.split() for r in run.stdout.splitlines()[1:]}
    assert [rows[d][1] for d in ids] == ["1"] * 2 + ["2"] * 8 + ["3"] * 10
    assert rows[WEAK][2:4] == ["rolled", "back"] and "health check failed" in " ".join(rows[WEAK])
    assert all(rows[d][2] == "succeeded" for d in ids if d != WEAK)
    for device_id in ids:
        model = status(tmp_path / device_id).get("tiny")
        if device_id == WEAK:
            assert model is None or model["version"] is None
        else:
            assert model["version"] == 1
