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
from tests.waiting import wait_until


def wait_until_answering(proc, sock, log, capsys):
    """Until the service answers ``edge-os ps`` (it is then serving); fail with its log if it exits first."""
    wait_until(lambda: proc.poll() is not None or main(["ps", "--json", "--socket", str(sock)]) == 0, 120,
               what=f"the service at {sock} to answer", interval=0.05)
    capsys.readouterr()
    assert proc.poll() is None, f"the service exited; its log: {log.read_text()}"


def test_serve_then_ps_then_sigterm(tmp_path, capsys, tiny_package):
    device = SimulatedDevice(tmp_path / "dev", zones=(SimZone("cpu-thermal"),),
                             model=ThermalModel(temp_c=48.5), battery=(77, "Discharging"))
    sock, log = tmp_path / "edge.sock", tmp_path / "serve.log"
    err = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", str(tiny_package), "--memory-budget", "1G",
         "--target", "rpi5",
         "--thermal-root", str(device.thermal_dir), "--power-root", str(device.power_dir),
         "--meminfo", str(device.meminfo_path), "--socket", str(sock)],
        stderr=err, env={**os.environ, "EDGE_OS_LOG_LEVEL": "INFO"},
    )
    err.close()  # the service has its own copy
    try:
        wait_until_answering(proc, sock, log, capsys)
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


def test_serve_runs_an_llm_and_a_periodic_tflite_model_and_ps_shows_both(tmp_path, capsys, tiny_package):
    from edge_os.package.tflite import pack_tflite
    from tests.tflite_models import keyword_spotting_model

    kws = pack_tflite(keyword_spotting_model(), tmp_path / "kws", name="kws")
    device = SimulatedDevice(tmp_path / "dev", zones=(SimZone("cpu-thermal"),))
    sock, log = tmp_path / "edge.sock", tmp_path / "serve.log"
    err = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", str(tiny_package), str(kws),
         "--periodic", "kws:20", "--memory-budget", "1G", "--thermal-root", str(device.thermal_dir),
         "--power-root", str(device.power_dir), "--meminfo", str(device.meminfo_path), "--socket", str(sock)],
        stderr=err, env={**os.environ, "EDGE_OS_LOG_LEVEL": "INFO"},
    )
    err.close()  # the service has its own copy
    try:
        wait_until_answering(proc, sock, log, capsys)
        status = {}
        for _ in range(600):  # the periodic model runs from the first tick on
            assert main(["ps", "--json", "--socket", str(sock)]) == 0
            status = json.loads(capsys.readouterr().out)
            if status["periodic"] and status["periodic"][0]["runs"] >= 3:
                break
            select.select([], [], [], 0.05)
        rows = {m["name"]: m for m in status["models"]}
        assert rows["kws"]["kind"] == "tflite" and rows["kws"]["loaded"] and rows["kws"]["pinned"]
        assert [m["kind"] for m in status["models"]].count("llm") == 1
        assert status["periodic"][0]["runs"] >= 3 and status["periodic"][0]["errors"] == 0
        assert status["memory"]["accounted_bytes"] >= rows["kws"]["resident_bytes"] > 0
        assert main(["ps", "--socket", str(sock)]) == 0
        table = capsys.readouterr().out
        assert "tflite" in table and "llm" in table and "periodic: kws every 20 ms" in table
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("periodic, message", [
    ("kws:0", "MS > 0"),
    ("kws:x", "MS > 0"),
    ("nope:20", "no TFLite model named 'nope'"),
    ("kws:20:missing.npy", "missing.npy"),
])
def test_a_bad_periodic_option_is_one_line(tmp_path, capsys, periodic, message):
    from edge_os.package.tflite import pack_tflite
    from tests.tflite_models import keyword_spotting_model

    kws = pack_tflite(keyword_spotting_model(), tmp_path / "kws", name="kws")
    assert main(["serve", "--models", str(kws), "--periodic", periodic, "--socket", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-os: error:") and message in err[0], err
