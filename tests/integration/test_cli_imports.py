"""What an `edge-os` process imports: argument parsing stays light, and a command loads only the
libraries it uses (`generate` never loads the MQTT or serial stacks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EDGE_OS = str(Path(sys.executable).parent / "edge-os")


def imported_modules(*args: str) -> set[str]:
    """Run `edge-os ARGS` with Python's import log on and return every module it imported."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    result = subprocess.run([EDGE_OS, *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no import log: PYTHONPROFILEIMPORTTIME had no effect"
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}  # the first line is the header


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_and_version_load_no_heavy_library():
    for args in (["--help"], ["--version"], ["pack", "--help"], ["serve", "--help"], ["chat", "--help"]):
        loaded = top_level(imported_modules(*args))
        assert "edge_os" in loaded  # the log works
        assert not loaded & {"tvm", "tvm_ffi", "numpy", "ml_dtypes", "paho", "serial", "tokenizers", "jinja2"}, args


def test_generate_loads_neither_mqtt_nor_serial(tiny_package):
    loaded = imported_modules("generate", "-m", str(tiny_package), "hi", "--max-tokens", "2", "--temperature", "0")
    assert "edge_os.runtime.engine" in loaded  # it did run the model
    assert not top_level(loaded) & {"paho", "serial", "firmware_bridge"}
    # tvm_ffi tries to import torch (edge_os.runtime.ffi): the log lists that failed attempt as "torch",
    # a real import of torch loads its submodules too (~190 MiB)
    assert not {m for m in loaded if m.startswith("torch.")}
    assert not {m for m in loaded if m.startswith(("edge_os.mqtt", "edge_os.scheduler"))}


def test_redaction_imports_without_paho():
    code = "import sys; sys.modules['paho'] = None; from edge_os.mqtt.redact import Redactor; print(Redactor)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
