"""`edge-os sensors` and `edge-os actuate` (real processes) against a device on a pty that sends
terminal escape sequences in its names and logs, NaN and infinite readings, and readings outside
its own declared range (issue 18, item 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hostile_device import ESCAPES, HostileDevice

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def device() -> Iterator[HostileDevice]:
    dev = HostileDevice()
    yield dev
    dev.close()


def edge_os(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_os.cli.main", *args],
        env={"PATH": "/usr/bin:/bin", "EDGE_OS_HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def assert_terminal_safe(text: str) -> None:
    for seq in ESCAPES:
        assert seq not in text, f"{seq!r} reached the terminal: {text!r}"
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text


def test_sensors_text_shows_device_text_escaped_and_flags_readings(device: HostileDevice, tmp_path: Path) -> None:
    result = edge_os("sensors", device.path, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)  # the device's LOG message went through logging
    out = result.stdout
    assert out.startswith("evil\\x1b]0;pwned\\x07fw 6.6\\x1b[2J on ")
    assert "temp\\x1b[31m" in out and "\\x9b1m°C" in out and "fan\\u202eX" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.startswith("    ")}
    assert "nan" in lines["temp\\x1b[31m"] and "[not a finite number]" in lines["temp\\x1b[31m"]
    assert "inf" in lines["humidity"] and "[not a finite number]" in lines["humidity"]
    assert "250 %" in lines["light"] and "[outside the declared range]" in lines["light"]
    assert "[" not in lines["fine"].split("(range")[0] and "[" not in lines["unbounded"].split("(range")[0]
    assert "screen cleared" in result.stderr and "\\x1b[2J" in result.stderr


def test_sensors_json_is_valid_json_with_nulls_and_flags(device: HostileDevice, tmp_path: Path) -> None:
    result = edge_os("sensors", device.path, "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_terminal_safe(result.stdout)
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout
    [report] = json.loads(result.stdout)  # strict: json.loads would accept NaN, so check above too
    assert report["firmware"] == "evil\x1b]0;pwned\x07fw"  # the data itself is kept, only escaped
    sensors = {s["name"]: s for s in report["sensors"]}
    assert (sensors["temp\x1b[31m"]["value"], sensors["temp\x1b[31m"]["flags"]) == (None, ["not_finite"])
    assert (sensors["humidity"]["value"], sensors["humidity"]["flags"]) == (None, ["not_finite"])
    assert (sensors["light"]["value"], sensors["light"]["flags"]) == (250.0, ["out_of_range"])
    assert (sensors["fine"]["value"], sensors["fine"]["flags"]) == (5.0, [])
    assert (sensors["unbounded"]["min"], sensors["unbounded"]["max"], sensors["unbounded"]["flags"]) == (None, None, [])


def test_actuate_output_and_errors_are_escaped_and_one_line(device: HostileDevice, tmp_path: Path) -> None:
    ok = edge_os("actuate", device.path, "fan\u202eX", "7", home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert_terminal_safe(ok.stdout + ok.stderr)
    assert ok.stdout.startswith("fan\\u202eX = 7: acknowledged by evil\\x1b]0;pwned\\x07fw 6.6\\x1b[2J on ")
    refused = edge_os("actuate", device.path, "relay", "1", home=tmp_path)
    assert refused.returncode == 1
    error_lines = [line for line in refused.stderr.splitlines() if line.startswith("edge-os: error: ")]
    assert len(error_lines) == 1 and "refused COMMAND relay=1: HARDWARE" in error_lines[0], refused.stderr
    assert_terminal_safe(refused.stderr)
    assert device.commands == [(0, 7)]
