"""One-shot `edge-os actuate` processes across a corrupting line (issue 18, item 9).

Each actuation is a fresh process: open the port, HELLO, one COMMAND, exit. On a line with a
bit-error rate of 1e-3 the full HELLO answer (~180 bytes) used to be corrupted so often that a
third of these failed. Now a fresh connection asks for the capabilities' CRC-32 only and finds
them in its cache; every retransmission keeps its sequence number, so each command still runs
exactly once (the simulator's journal says so).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from firmware_bridge.messages import MsgType

from .proxy import CorruptingProxy, Noise
from .sim import Simulator

ROOT = Path(__file__).resolve().parents[3]
ACTUATIONS = 10


def actuate(port: str, value: int, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_os.cli.main", "actuate", port, "fan", str(value), "--json"],
        env={"PATH": "/usr/bin:/bin", "EDGE_OS_HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_one_shot_actuations_over_a_noisy_line_all_succeed_exactly_once(sim: Simulator, tmp_path: Path) -> None:
    proxy = CorruptingProxy(sim.path, Noise(), seed=18)
    home = tmp_path / "home"
    try:
        results = [actuate(proxy.host_path, value, home) for value in range(1, ACTUATIONS + 1)]
    finally:
        proxy.close()
    stats = sim.stop()
    failures = [(r.returncode, r.stderr.strip().splitlines()[-1:]) for r in results if r.returncode != 0]
    assert failures == [], failures
    reports = [json.loads(r.stdout) for r in results]
    assert all(r["ack"] for r in reports)

    # The journal: every value once, in order, each from its own sequence number.
    journal = sim.commands()
    assert [(c["actuator"], c["value"]) for c in journal] == [("fan", v) for v in range(1, ACTUATIONS + 1)]
    assert len({c["seq"] for c in journal}) == ACTUATIONS

    # Only the first process fetched the full capabilities (some of its tries were damaged and
    # resent with the same seq); the others asked for the 4-byte digest.
    hellos = [f for f in proxy.to_device.sent if f.type == MsgType.HELLO]
    assert len({f.seq for f in hellos if f.payload == b""}) == 1
    assert len({f.seq for f in hellos if f.payload == b"\x01"}) == ACTUATIONS
    assert len(list((home / "firmware" / "capabilities").glob("*.hello"))) == 1

    retries = sum(r["retries"] for r in reports)
    print(json.dumps({"actuations": ACTUATIONS, "command_retransmissions": retries, "to_host": {
        "frames": proxy.to_host.frames, "damaged": proxy.to_host.damaged}, "device": stats}))  # fmt: skip
    assert proxy.to_host.damaged > 0 and proxy.to_device.damaged > 0  # the line was noisy
