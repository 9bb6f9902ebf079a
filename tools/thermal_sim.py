#!/usr/bin/env python3
"""Sustained decode on a simulated device, with and without the thermal governor.

Runs the real scheduler loop, probes and governor against a simulated sysfs tree (first-order
thermal model, kernel throttling above the passive trip point) and writes a PNG of temperature
and tokens/s over time for both runs, plus a summary on stdout.

    .venv/bin/python tools/thermal_sim.py --seconds 300 --out out/thermal_sim.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the simulated device lives with the tests

from tests.scheduler_simulation import SustainedRun, sustained_run  # noqa: E402


def summary(free: SustainedRun, governed: SustainedRun) -> str:
    given_up = 1 - governed.mean_tok_s / free.mean_tok_s
    return "\n".join([
        f"setpoint {governed.setpoint_c:.1f} C, device passive trip {governed.trip_c:.1f} C",
        f"ungoverned: max {free.max_temp_c:.1f} C, {free.mean_tok_s:.1f} tok/s",
        f"governed:   max {governed.max_temp_c:.1f} C, {governed.mean_tok_s:.1f} tok/s",
        f"throughput given up by the governor: {given_up:.0%}",
    ])


def plot(free: SustainedRun, governed: SustainedRun, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("thermal_sim: the plot needs matplotlib: pip install 'edge-os[plot]'")
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    for run, color in ((free, "tab:red"), (governed, "tab:blue")):
        label = "governed" if run.governed else "ungoverned"
        top.plot(run.times, run.temps_c, color=color, label=label)
        bottom.plot(run.times, run.tok_s, color=color, label=f"{label} ({run.mean_tok_s:.0f} tok/s mean)")
    top.axhline(governed.trip_c, color="black", linestyle="--", linewidth=1, label="passive trip")
    top.axhline(governed.setpoint_c, color="gray", linestyle=":", linewidth=1, label="setpoint")
    top.set_ylabel("temperature (C)")
    top.legend(loc="lower right")
    bottom.set_ylabel("tokens / s")
    bottom.set_xlabel("seconds of sustained decoding")
    bottom.legend(loc="lower right")
    fig.suptitle("edge-os scheduler on a simulated device")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="simulated seconds per run")
    parser.add_argument("--concurrent", type=int, default=4, help="requests kept in flight")
    parser.add_argument("--setpoint", type=float, default=75.0, help="governor setpoint, C")
    parser.add_argument("--out", type=Path, default=Path("out/thermal_sim.png"), help="PNG to write")
    args = parser.parse_args()
    runs = []
    for governed in (False, True):
        with tempfile.TemporaryDirectory() as root:
            runs.append(sustained_run(Path(root), governed, args.seconds, args.concurrent, args.setpoint))
    print(summary(*runs))
    plot(*runs, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
