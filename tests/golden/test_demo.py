"""`edge-os demo` without a terminal plays its scripted session on the real default model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_unattended(default_package):
    edge_os = str(Path(sys.executable).parent / "edge-os")
    result = subprocess.run([edge_os, "demo", "--max-tokens", "24"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("assistant> ") == 3
    assert "Paris" in result.stdout
    assert "peak memory" in result.stdout and "tok/s" in result.stdout
