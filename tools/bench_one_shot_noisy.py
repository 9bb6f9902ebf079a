"""How often a one-shot actuation (open, HELLO, one COMMAND, close) succeeds across a noisy line.

Runs the compiled simulator behind the tests' corrupting proxy (bit-error rate 1e-3, drops,
inserts and bursts, seeded) and makes N one-shot actuations in this process, either as `edge-os
actuate` did before issue 18 (default link settings, full HELLO) or as it does now (compact HELLO
with a capability cache, retransmissions with backoff). Prints successes, failures, commands run
more than once per the simulator's journal, and the mean time per actuation.

    python tools/bench_one_shot_noisy.py --n 60 --seed 1

Needs `make firmware-sim`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from edge_os.cli.actuate import FULL_HELLO_RETRIES, one_shot_link
from firmware_bridge import Device, DeviceError
from firmware_bridge.capability_cache import CapabilityCache

ROOT = Path(__file__).resolve().parents[1]


def run(mode: str, n: int, seed: int, workdir: Path) -> dict:
    sys.path.insert(0, str(ROOT))  # the simulator and the proxy are the tests' own real parts
    from tests.integration.firmware_bridge.proxy import CorruptingProxy, Noise
    from tests.integration.firmware_bridge.sim import Simulator

    sim = Simulator.start(workdir / f"journal-{mode}.jsonl")
    proxy = CorruptingProxy(sim.path, Noise(), seed=seed)
    cache = CapabilityCache(workdir / f"caps-{mode}")
    ok = failed = 0
    start = time.monotonic()
    try:
        for i in range(n):
            try:
                if mode == "before":
                    device = Device.open(proxy.host_path)
                else:
                    device = Device.open(proxy.host_path, one_shot_link(),
                                         hello_retries=FULL_HELLO_RETRIES, cache=cache)
                with device:
                    device.command("fan", i % 256)
                ok += 1
            except DeviceError:
                failed += 1
    finally:
        proxy.close()
        sim.stop()
    runs = Counter(entry["seq"] for entry in sim.commands())
    return {
        "mode": mode,
        "actuations": n,
        "acknowledged": ok,
        "failed": failed,
        "executed": sum(runs.values()),
        "executed_twice_or_more": sum(1 for c in runs.values() if c > 1),
        "mean_s": round((time.monotonic() - start) / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("before", "after"):
            print(json.dumps(run(mode, args.n, args.seed, Path(tmp))))


if __name__ == "__main__":
    main()
