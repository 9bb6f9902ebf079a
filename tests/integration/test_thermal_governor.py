"""Sustained load on a simulated device: the real loop, probes and governor against fake sysfs.

Without the governor the die heats past the device's passive trip point (and the simulated
kernel throttles it); with it, the hottest zone stays below the setpoint. The throughput the
governor gives up is printed (``pytest -s``) for the report.
"""

from tests.scheduler_simulation import sustained_run


def test_governed_run_stays_below_the_setpoint_ungoverned_crosses_the_trip(tmp_path):
    free = sustained_run(tmp_path / "free", governed=False, seconds=90)
    governed = sustained_run(tmp_path / "governed", governed=True, seconds=90)
    assert governed.setpoint_c == 75.0 and governed.trip_c == 85.0
    assert free.max_temp_c >= free.trip_c
    assert governed.max_temp_c < governed.setpoint_c
    assert {"SLOW_1", "SLOW_2"} & set(governed.levels)
    assert set(free.levels) == {"NORMAL"}
    given_up = 1 - governed.mean_tok_s / free.mean_tok_s
    print(f"\nsetpoint {governed.setpoint_c} C; max {free.max_temp_c:.1f} C ungoverned vs "
          f"{governed.max_temp_c:.1f} C governed; {free.mean_tok_s:.0f} vs {governed.mean_tok_s:.0f} tok/s "
          f"({given_up:.0%} given up)")
    assert 0 < given_up < 0.5  # it slows down, but does not simply stop
