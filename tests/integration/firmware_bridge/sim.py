"""The compiled C simulator as a test fixture: build once (into a temporary directory), run one per test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIRMWARE = ROOT / "firmware_bridge"


def require_tool(name: str) -> str:
    """The path of a compiler the tests need; a missing one fails (never skips) the test."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed: run `make system-deps` (tools/install-system-deps.sh)")
    return path


def build(target: str, build_dir: Path, *, always: bool = False) -> str:
    """``make target`` of the firmware with its outputs in ``build_dir``; returns what make printed.

    ``always`` rebuilds even what is up to date (to see the compiler's command lines).
    """
    require_tool("make")
    command = ["make", *(["-B"] if always else []), "-C", str(FIRMWARE), f"BUILD={build_dir}", target]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass
class Simulator:
    """A running simulator: ``path`` is its pty (or ``link`` when given), ``journal`` its journal."""

    process: subprocess.Popen[str]
    path: str
    journal: Path
    stats: dict[str, int] | None = None

    @classmethod
    def start(cls, binary: Path, journal: Path, link: Path | None = None) -> Simulator:
        args = [str(binary), "--journal", str(journal)] + (["--link", str(link)] if link else [])
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None
        pty = process.stdout.readline().strip()
        assert pty.startswith("/dev/"), f"simulator printed {pty!r} instead of its pty"
        return cls(process, str(link) if link else pty, journal)

    def stop(self) -> dict[str, int]:
        """Stop it (once) and return the counters it prints on exit."""
        if self.stats is None:
            self.process.send_signal(signal.SIGTERM)
            _, err = self.process.communicate(timeout=10)
            lines = [line for line in err.splitlines() if line.startswith("{")]
            assert lines, f"simulator printed no counters: {err!r}"
            self.stats = json.loads(lines[-1])
        return self.stats

    def commands(self) -> list[dict]:
        """Every actuator command the simulator executed, in order."""
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text().splitlines()]


def pty_pair() -> tuple[int, str]:
    """A pty pair with nothing on it: (master fd, slave path)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    return master, path
