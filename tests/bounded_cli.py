"""Runs the real ``edge-os`` command in a child under a memory cap and a time limit."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MEMORY_CAP = 1 << 30  # address space of the child: a hostile file must not get past it
TIME_LIMIT_S = 60.0  # the child is killed after this; tests assert a much shorter bound


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _cap_memory(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_edge_os(*args: str, memory: int = MEMORY_CAP, timeout: float = TIME_LIMIT_S,
                env: dict | None = None) -> CliResult:
    """``edge-os ARGS`` with RLIMIT_AS = ``memory``; raises ``subprocess.TimeoutExpired`` past ``timeout``."""
    exe = Path(sys.executable).with_name("edge-os")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "edge_os.cli.main"]
    child_env = {**os.environ, "EDGE_OS_LOG_LEVEL": "ERROR", "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_cap_memory(memory), env=child_env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def assert_one_line_error(result: CliResult, *fragments: str, bound_s: float = 30.0) -> str:
    """Exit code 1, exactly one ``edge-os: error:`` line mentioning each fragment, within ``bound_s``."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert len(result.error_lines) == 1, result.stderr[-2000:]
    line = result.error_lines[0]
    assert line.startswith("edge-os: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert result.seconds < bound_s, f"took {result.seconds:.1f} s"
    return line
