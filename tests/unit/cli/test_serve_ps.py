"""`edge-os serve` and `edge-os ps` end to end, on a simulated device tree."""

import json
import os
import select
import signal
import subprocess
import sys

import pytest

from edge_os.cli.main import main
from tests.simulated_sysfs import SimulatedDevice, SimZone, ThermalModel


def wait_for_output(stream, needle, timeout=60.0):
    """Read the unbuffered ``stream`` until ``needle`` appears (the service logs when it is ready)."""
    seen = b""
    while needle.encode() not in seen:
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            raise AssertionError(f"no {needle!r} within {timeout} s; got: {seen.decode()}")
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"the service exited before {needle!r}: {seen.decode()}")
        seen += chunk


def test_serve_then_ps_then_sigterm(tmp_path, capsys, tiny_package):
    device = SimulatedDevice(tmp_path / "dev", zones=(SimZone("cpu-thermal"),),
                             model=ThermalModel(temp_c=48.5), battery=(77, "Discharging"))
    sock = tmp_path / "edge.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", str(tiny_package), "--memory-budget", "1G",
         "--target", "rpi5",
         "--thermal-root", str(device.thermal_dir), "--power-root", str(device.power_dir),
         "--meminfo", str(device.meminfo_path), "--socket", str(sock)],
        stderr=subprocess.PIPE, bufsize=0, env={**os.environ, "EDGE_OS_LOG_LEVEL": "INFO"},
    )
    try:
        wait_for_output(proc.stderr, "serving")
        assert main(["ps", "--json", "--socket", str(sock)]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["memory"]["budget_bytes"] == 1 << 30
        assert status["thermal"]["zones"][0] == {"name": "cpu-thermal", "temp_c": 48.5, "trips_c": [85.0, 100.0]}
        assert status["governor"]["setpoint_c"] == 72.0  # rpi5's descriptor
        assert status["power"] == {"on_battery": True, "battery_pct": 77}
        assert main(["ps", "--socket", str(sock)]) == 0
        table = capsys.readouterr().out
        assert "cpu-thermal 48.5 C" in table and "1.0G budget" in table and "battery 77%" in table
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        proc.stderr.close()
    assert not sock.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "--memory-budget", "lots"], "memory budget 'lots' is not a size"),
        (["serve", "--models", "/nonexistent/pkg"], "/nonexistent/pkg does not exist"),
        (["serve", "--keep-alive", "soon"], "keep-alive 'soon'"),
        (["serve", "--pin", "ghost"], "cannot pin or preload 'ghost'"),
        (["serve", "--target", "toaster"], "unknown target"),
        (["serve", "--pin", "ghost"], "(have: smollm2-135m-instruct)"),  # known before packing the default model
        (["ps", "--socket", "/nonexistent/edge.sock"], "no edge-os service answers"),
    ],
)
def test_bad_input_is_a_one_line_error(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_OS_HOME", str(tmp_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
