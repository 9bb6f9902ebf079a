"""`edge-os serve --http` as a real process for the HTTP API tests, on a simulated device tree."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge_os.scheduler.status_socket import query
from tests.simulated_sysfs import SimulatedDevice


class HttpService:
    """One `edge-os serve --models PKG --http 127.0.0.1:0` process; ``url`` once it listens."""

    def __init__(self, tmp: Path, packages: list[Path], *extra: str, env: dict[str, str] | None = None,
                 http: str = "127.0.0.1:0", context: int = 256) -> None:
        self.device = SimulatedDevice(tmp / "device")
        sock_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))  # Unix socket paths are short
        self.socket = sock_dir / "s.sock"
        argv = [sys.executable, "-m", "edge_os.cli.main", "serve", "--models", *map(str, packages),
                "--http", http, "--threads", "1", "--context", str(context), "--socket", str(self.socket),
                "--thermal-root", str(self.device.thermal_dir), "--power-root", str(self.device.power_dir),
                "--meminfo", str(self.device.meminfo_path), *extra]
        self.log_lines: list[str] = []
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env={**os.environ, "EDGE_OS_LOG_LEVEL": "INFO", **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        found = self.wait_log(r"HTTP API on (http://\S+)", 120)
        self.url = found.group(1)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log_lines.append(line)

    def wait_log(self, pattern: str, timeout: float = 30) -> re.Match:
        """Wait for a log line matching ``pattern`` (the service logs each step it takes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.log_lines):
                if (m := re.search(pattern, line)) is not None:
                    return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"serve exited ({self.proc.returncode}):\n{''.join(self.log_lines)}")
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r} in {timeout} s:\n{''.join(self.log_lines)}")

    def status(self) -> dict:
        """What `edge-os ps --json` shows."""
        return query(self.socket)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(5)
        return code
