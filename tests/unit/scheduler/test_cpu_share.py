"""Engines run on the cores other programs leave: the /proc reader, the policy, and the loop applying it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_os.config import usable_cores
from edge_os.errors import SchedulerError
from edge_os.scheduler.cpu_share import CpuShare
from edge_os.scheduler.probes import CpuProbe, CpuReading
from tests.unit.scheduler.conftest import G, M


def _fake_proc(root: Path, runnable: int, own_states: list[str]) -> CpuProbe:
    """A loadavg file and a task directory in /proc's layout."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "loadavg").write_text(f"1.50 0.90 0.40 {runnable}/213 4242\n")
    for i, state in enumerate(own_states):
        task = root / "task" / str(100 + i)
        task.mkdir(parents=True, exist_ok=True)
        (task / "stat").write_text(f"{100 + i} (edge) os (x) {state} 1 100 100 0 -1\n")
    (root / "task").mkdir(exist_ok=True)
    return CpuProbe(root / "loadavg", root / "task")


def test_the_probe_subtracts_this_process_s_runnable_threads(tmp_path):
    reading = _fake_proc(tmp_path, 5, ["R", "S", "R", "D"]).read()
    assert reading.others_runnable == 3 and reading.cores == usable_cores()
    assert _fake_proc(tmp_path / "b", 1, ["R", "R"]).read().others_runnable == 0  # never negative


def test_an_unreadable_loadavg_says_what_is_wrong(tmp_path):
    (tmp_path / "loadavg").write_text("1.50 0.90\n")
    with pytest.raises(SchedulerError, match="no RUNNABLE/TOTAL field"):
        CpuProbe(tmp_path / "loadavg", tmp_path).read()
    with pytest.raises(SchedulerError, match="cannot read the runnable task count"):
        CpuProbe(tmp_path / "missing", tmp_path).read()


def test_the_real_probe_sees_a_busy_neighbour():
    probe = CpuProbe()
    assert probe.read().others_runnable >= 0
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable_cores() + 1)]
    try:
        deadline = time.monotonic() + 60
        # more busy programs than cores: at any instant some of them are runnable
        while probe.read().others_runnable < 1:
            assert time.monotonic() < deadline, "the busy processes never showed as runnable"
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def _settle(share: CpuShare, others: int, cores: int = 2, readings: int = 20) -> int:
    for _ in range(readings):
        fraction = share.update(CpuReading(cores, others)).thread_fraction
    return round(fraction * share.threads)


def test_threads_leave_the_cores_neighbours_use_and_come_back_when_they_stop():
    assert _settle(CpuShare(threads=2), 1, readings=1) == 1  # the first reading counts whole
    share = CpuShare(threads=2)
    assert _settle(share, 0, readings=1) == 2
    assert _settle(share, 1, readings=1) == 2  # one reading does not move the average far
    assert _settle(share, 1) == 1
    assert _settle(share, 5) == 1  # never below one thread
    assert "engines on 1 of 2 threads" in share.reason
    assert _settle(share, 0) == 2
    assert CpuShare(threads=2).update(CpuReading(8, 3)).thread_fraction == 1.0  # 5 free cores: all it has


def test_no_thread_back_and_forth_at_the_edge():
    share = CpuShare(threads=2)
    _settle(share, 1)
    seen = set()
    for others in [0, 1] * 20:  # a neighbour busy every other reading: ~half a core
        seen.add(round(share.update(CpuReading(2, others)).thread_fraction * 2))
    assert seen == {1}


def test_the_loop_resizes_engines_as_neighbours_come_and_go(harness, tmp_path):
    proc = tmp_path / "proc"
    h = harness({"a": (1 * G, 1 * M, 0)}, threads=usable_cores(), probe_interval_s=0.0,
                cpu_probe=_fake_proc(proc, 50, []))
    handle = h.submit(max_tokens=400)
    h.run(3)
    engine = h.engine("a")
    assert engine.threads == 1 or engine.thread_changes[-1] == 1  # 50 busy tasks leave one thread
    _fake_proc(proc, 0, [])
    for _ in range(40):
        h.run(1)
    assert usable_cores() == 1 or engine.thread_changes[-1] == usable_cores()
    handle.cancel()
    h.run_until_done([handle])
