"""The real probe readers on fake trees in the sysfs and procfs layout."""

import pytest

from edge_os.errors import SchedulerError
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from tests.simulated_sysfs import SimulatedDevice, SimZone, ThermalModel


def test_meminfo_reads_total_and_available(tmp_path):
    (tmp_path / "meminfo").write_text(
        "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    5000000 kB\nCached: 4 kB\n"
    )
    reading = MemoryProbe(tmp_path / "meminfo").read()
    assert reading.total_bytes == 8000000 * 1024
    assert reading.available_bytes == 5000000 * 1024  # not MemFree: page cache is reclaimable


def test_meminfo_without_memavailable_estimates_it(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 300 kB\n")
    assert MemoryProbe(tmp_path / "meminfo").read().available_bytes == 400 * 1024


def test_meminfo_missing_is_a_clear_error(tmp_path):
    with pytest.raises(SchedulerError, match="cannot read memory figures"):
        MemoryProbe(tmp_path / "nope").read()
    (tmp_path / "junk").write_text("hello\n")
    with pytest.raises(SchedulerError, match="no MemTotal"):
        MemoryProbe(tmp_path / "junk").read()


def test_thermal_probe_reads_the_simulated_tree(tmp_path):
    zones = (
        SimZone("cpu-thermal", 0.0, ((80.0, "passive"), (95.0, "critical"))),
        SimZone("gpu-thermal", 3.0, ((70.0, "active"), (90.0, "passive"))),
        SimZone("battery", -10.0, ((60.0, "hot"),)),
    )
    device = SimulatedDevice(tmp_path, zones=zones, model=ThermalModel(temp_c=50.0))
    reading = ThermalProbe(device.thermal_dir, zones=("cpu-thermal", "gpu-thermal")).read()
    assert [z.name for z in reading.zones] == ["cpu-thermal", "gpu-thermal"]
    assert reading.zones[0].temp_c == pytest.approx(50.0)
    assert reading.hottest.name == "gpu-thermal" and reading.hottest.temp_c == pytest.approx(53.0)
    assert reading.lowest_trip_c() == 80.0  # the active (fan) trip at 70 does not count
    assert [c.name for c in reading.cooling] == ["cpufreq-cpu0"]
    assert not reading.throttled_by_os


def test_thermal_probe_watches_everything_when_named_zones_are_missing(tmp_path, caplog):
    device = SimulatedDevice(tmp_path, zones=(SimZone("acpitz"),))
    reading = ThermalProbe(device.thermal_dir, zones=("x86_pkg_temp",)).read()
    assert [z.name for z in reading.zones] == ["acpitz"]
    assert "x86_pkg_temp" in caplog.text


def test_thermal_probe_tolerates_unreadable_sensors_and_no_tree(tmp_path):
    device = SimulatedDevice(tmp_path)
    (device.thermal_dir / "thermal_zone0" / "temp").write_text("garbage\n")
    reading = ThermalProbe(device.thermal_dir).read()
    assert reading.zones[0].temp_c is None and reading.hottest is None
    empty = ThermalProbe(tmp_path / "missing").read()
    assert empty.zones == () and empty.cooling == ()


def test_simulated_kernel_throttles_above_its_trip(tmp_path):
    device = SimulatedDevice(tmp_path, zones=(SimZone("cpu-thermal", 0.0, ((60.0, "passive"),)),))
    for _ in range(60):
        device.advance(1.0, busy_fraction=1.0)
    reading = ThermalProbe(device.thermal_dir).read()
    assert reading.throttled_by_os
    assert device.slowdown > 1.0


def test_power_probe_battery_and_mains(tmp_path):
    device = SimulatedDevice(tmp_path, battery=(15, "Discharging"))
    reading = PowerProbe(device.power_dir).read()
    assert reading.battery.capacity == 15 and reading.on_battery
    device.set_battery(15, "Discharging", mains_online=True)
    assert not PowerProbe(device.power_dir).read().on_battery
    device.set_battery(15, "Charging")
    assert not PowerProbe(device.power_dir).read().on_battery


def test_power_probe_without_battery(tmp_path):
    reading = PowerProbe(tmp_path / "none").read()
    assert reading.battery is None and not reading.on_battery
