"""Table tests of the thermal and power governor."""

import pytest

from edge_os.scheduler.governor import (
    LEVEL_THROTTLE,
    Governor,
    GovernorConfig,
    Level,
    PowerConfig,
    Throttle,
    effective_setpoint,
    entry_temps,
    next_level,
    power_throttle,
)
from edge_os.scheduler.probes import PowerProbe, ThermalProbe
from edge_os.scheduler.probes.power import PowerReading, SupplyReading
from tests.simulated_sysfs import SimulatedDevice, SimZone, ThermalModel

ENTRIES = entry_temps(75.0, 5.0)  # 70.0, 70.8, 71.7, 72.5, 73.3, 74.2


def test_entry_temperatures_span_the_band_below_the_setpoint():
    assert len(ENTRIES) == len(Level) - 1
    assert ENTRIES[0] == pytest.approx(70.0)
    assert ENTRIES[-1] == pytest.approx(75.0 - 5.0 / 6)
    assert list(ENTRIES) == sorted(ENTRIES)


@pytest.mark.parametrize(
    "current, temp, expected",
    [
        (Level.NORMAL, 60.0, Level.NORMAL),
        (Level.NORMAL, 70.0, Level.SLOW_1),
        (Level.NORMAL, 72.6, Level.PAUSE_BACKGROUND),  # a fast rise jumps straight up
        (Level.NORMAL, 80.0, Level.REFUSE),
        (Level.SLOW_2, 70.5, Level.SLOW_2),  # between exit and entry: hysteresis holds it
        (Level.SLOW_2, 66.0, Level.SLOW_2),  # 70.83 - 5 = 65.83: not below yet
        (Level.SLOW_2, 65.5, Level.SLOW_1),  # below: one level down at a time
        (Level.REFUSE, 50.0, Level.FALLBACK),
        (Level.SLOW_1, 64.9, Level.NORMAL),
    ],
)
def test_next_level_table(current, temp, expected):
    assert next_level(current, temp, ENTRIES, 5.0) == expected


@pytest.mark.parametrize(
    "configured, trip, expected",
    [(75.0, None, 75.0), (75.0, 100.0, 75.0), (75.0, 78.0, 73.0), (42.0, 45.0, 40.0)],
)
def test_setpoint_stays_below_the_devices_trip_points(configured, trip, expected):
    assert effective_setpoint(GovernorConfig(setpoint_c=configured, trip_margin_c=5.0), trip) == expected


def test_levels_get_strictly_stricter():
    duties = [LEVEL_THROTTLE[level].duty for level in Level]
    assert duties == sorted(duties, reverse=True)
    assert not LEVEL_THROTTLE[Level.SLOW_3].pause_background
    assert LEVEL_THROTTLE[Level.PAUSE_BACKGROUND].pause_background
    assert LEVEL_THROTTLE[Level.FALLBACK].refuse_new == "too_hot" and not LEVEL_THROTTLE[Level.FALLBACK].stop
    assert LEVEL_THROTTLE[Level.REFUSE].stop


def battery(capacity, status, mains=False):
    return PowerReading((SupplyReading("BAT0", "Battery", capacity, status, None),
                         SupplyReading("AC", "Mains", None, None, mains)))


@pytest.mark.parametrize(
    "reading, duty, paused, refuse",
    [
        (PowerReading(()), 1.0, False, None),
        (battery(50, "Discharging"), 1.0, False, None),
        (battery(20, "Discharging"), 0.5, True, None),
        (battery(10, "Discharging"), 0.5, True, "low_battery"),
        (battery(5, "Charging"), 1.0, False, None),
        (battery(5, "Discharging", mains=True), 1.0, False, None),
    ],
)
def test_low_battery_policy(reading, duty, paused, refuse):
    throttle, reason = power_throttle(reading, PowerConfig())
    assert (throttle.duty, throttle.pause_background, throttle.refuse_new) == (duty, paused, refuse)
    assert bool(reason) == (throttle != Throttle())


def test_strictest_combines_field_by_field():
    a = Throttle(duty=0.5, max_batch=4)
    b = Throttle(duty=0.75, max_batch=None, refuse_new="low_battery", thread_fraction=0.5)
    assert a.strictest(b) == Throttle(duty=0.5, thread_fraction=0.5, max_batch=4, refuse_new="low_battery")


def test_governor_on_a_fake_tree_logs_each_step_with_its_reason(tmp_path, caplog):
    zones = (SimZone("cpu-thermal", 0.0, ((90.0, "passive"),)),)
    device = SimulatedDevice(tmp_path, zones=zones, model=ThermalModel(temp_c=40.0), battery=(80, "Discharging"))
    thermal, power = ThermalProbe(device.thermal_dir, ("cpu-thermal",)), PowerProbe(device.power_dir)
    governor = Governor(GovernorConfig(setpoint_c=75.0, hysteresis_c=5.0), PowerConfig())
    assert governor.update(thermal.read(), power.read()) == Throttle()
    device.model.temp_c = 70.5
    device.flush()
    throttle = governor.update(thermal.read(), power.read())
    assert governor.level == Level.SLOW_1 and throttle.duty == 0.75
    assert "cpu-thermal 70.5 C above 70.0 C" in caplog.text
    device.model.temp_c = 60.0
    device.flush()
    governor.update(thermal.read(), power.read())
    assert governor.level == Level.NORMAL
    assert "NORMAL" in governor.status()["level"]


def test_trip_point_lowers_the_setpoint(tmp_path):
    device = SimulatedDevice(tmp_path, zones=(SimZone("skin", 0.0, ((45.0, "passive"),)),),
                             model=ThermalModel(temp_c=40.5))
    governor = Governor(GovernorConfig(setpoint_c=75.0, hysteresis_c=2.0, trip_margin_c=3.0), PowerConfig())
    governor.update(ThermalProbe(device.thermal_dir).read(), PowerProbe(device.power_dir).read())
    assert governor.setpoint_c == 42.0
    assert governor.level > Level.NORMAL  # 40.5 >= 42 - 2


def test_disabled_governor_never_throttles(tmp_path):
    device = SimulatedDevice(tmp_path, model=ThermalModel(temp_c=99.0))
    governor = Governor(GovernorConfig(enabled=False), PowerConfig())
    assert governor.update(ThermalProbe(device.thermal_dir).read(), PowerProbe(device.power_dir).read()) == Throttle()
