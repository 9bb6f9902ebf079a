"""A simulated device: real files in the /sys and /proc layout, heated by a simple thermal model.

Tests and ``tools/thermal_sim.py`` point the real probes at the tree this writes, so the readers,
the governor and the loop run exactly as they do on a device. The model is first order: the die
heats toward ``ambient + r_th * power`` with time constant ``tau``, power rising with the fraction
of time spent computing. Above the lowest passive trip point the simulated kernel raises its
cooling device one state per second, and the device computes slower (as a phone does once it
throttles); it steps back down once the zone cools a few degrees below the trip. Like the kernel,
which polls its sensors, the files are rewritten every ``poll_s`` simulated seconds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ThermalModel:
    """First-order thermal model of a SoC: dT/dt = (ambient + r_th * P - T) / tau."""

    ambient_c: float = 25.0
    r_th_c_per_w: float = 12.0  # steady-state rise per watt
    tau_s: float = 30.0
    idle_w: float = 0.5
    busy_w: float = 6.5  # while decoding flat out
    temp_c: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        if math.isnan(self.temp_c):
            self.temp_c = self.ambient_c

    def steady_c(self, busy_fraction: float) -> float:
        return self.ambient_c + self.r_th_c_per_w * (self.idle_w + (self.busy_w - self.idle_w) * busy_fraction)

    def advance(self, dt: float, busy_fraction: float) -> float:
        """Move ``dt`` seconds forward with the given share of time busy; returns the new temperature."""
        target = self.steady_c(min(1.0, max(0.0, busy_fraction)))
        self.temp_c = target + (self.temp_c - target) * math.exp(-dt / self.tau_s)
        return self.temp_c


@dataclass(frozen=True)
class SimZone:
    name: str
    offset_c: float = 0.0  # this zone reads the die temperature plus this
    trips: tuple[tuple[float, str], ...] = ((85.0, "passive"), (100.0, "critical"))


def _write(path: Path, text: str) -> None:
    """Replace a file atomically, so a reader in another process never sees it half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


class SimulatedDevice:
    """Writes and updates ``root/sys/class/thermal``, ``root/sys/class/power_supply``, ``root/proc/meminfo``."""

    COOLING_MAX_STATE = 4
    COOLING_RELEASE_C = 3.0  # the simulated kernel relaxes a state once this far below the trip
    COOLING_STEP_S = 1.0  # and changes at most one state per this many seconds

    def __init__(
        self,
        root: Path | str,
        zones: tuple[SimZone, ...] = (SimZone("cpu-thermal"),),
        model: ThermalModel | None = None,
        mem_total: int = 8 << 30,
        mem_available: int = 6 << 30,
        battery: tuple[int, str] | None = None,
        poll_s: float = 0.25,
    ):
        self.root = Path(root)
        self.poll_s = poll_s
        self._since_write = 0.0
        self._written_cooling: int | None = None
        self.zones = zones
        self.model = model or ThermalModel()
        self.cooling_state = 0
        self._since_cooling_change = 0.0
        self.thermal_dir.mkdir(parents=True, exist_ok=True)
        self.power_dir.mkdir(parents=True, exist_ok=True)
        self.meminfo_path.parent.mkdir(parents=True, exist_ok=True)
        for i, zone in enumerate(zones):
            zdir = self.thermal_dir / f"thermal_zone{i}"
            zdir.mkdir(exist_ok=True)
            _write(zdir / "type", zone.name)
            for k, (temp, kind) in enumerate(zone.trips):
                _write(zdir / f"trip_point_{k}_temp", str(round(temp * 1000)))
                _write(zdir / f"trip_point_{k}_type", kind)
        cdir = self.thermal_dir / "cooling_device0"
        cdir.mkdir(exist_ok=True)
        _write(cdir / "type", "cpufreq-cpu0")
        _write(cdir / "max_state", str(self.COOLING_MAX_STATE))
        self.set_memory(mem_total, mem_available)
        if battery is not None:
            self.set_battery(*battery)
        self._write_thermal()

    @property
    def thermal_dir(self) -> Path:
        return self.root / "sys" / "class" / "thermal"

    @property
    def power_dir(self) -> Path:
        return self.root / "sys" / "class" / "power_supply"

    @property
    def meminfo_path(self) -> Path:
        return self.root / "proc" / "meminfo"

    @property
    def passive_trip_c(self) -> float:
        """The lowest passive trip over all zones, in die temperature."""
        return min(t - z.offset_c for z in self.zones for t, kind in z.trips if kind == "passive")

    @property
    def slowdown(self) -> float:
        """How much longer work takes than at full clock (1.0 .. 2.0) under kernel throttling."""
        return 1.0 + self.cooling_state / self.COOLING_MAX_STATE

    def advance(self, dt: float, busy_fraction: float) -> None:
        """Run the thermal model forward and rewrite the zone temperatures and cooling state."""
        if dt <= 0:
            return
        self.model.advance(dt, busy_fraction)
        self._since_cooling_change += dt
        if self._since_cooling_change >= self.COOLING_STEP_S:
            temp, trip = self.model.temp_c, self.passive_trip_c
            if temp >= trip and self.cooling_state < self.COOLING_MAX_STATE:
                self.cooling_state += 1
                self._since_cooling_change = 0.0
            elif temp < trip - self.COOLING_RELEASE_C and self.cooling_state > 0:
                self.cooling_state -= 1
                self._since_cooling_change = 0.0
        self._since_write += dt
        if self._since_write >= self.poll_s:
            self._write_thermal()

    def set_memory(self, total: int, available: int) -> None:
        free = max(0, available - (available // 4))
        _write(
            self.meminfo_path,
            "\n".join(
                [
                    f"MemTotal:       {total // 1024} kB",
                    f"MemFree:        {free // 1024} kB",
                    f"MemAvailable:   {available // 1024} kB",
                    f"Cached:         {(available - free) // 1024} kB",
                ]
            ),
        )

    def set_battery(self, capacity: int, status: str, mains_online: bool = False) -> None:
        bat, ac = self.power_dir / "BAT0", self.power_dir / "AC"
        bat.mkdir(exist_ok=True)
        ac.mkdir(exist_ok=True)
        _write(bat / "type", "Battery")
        _write(bat / "capacity", str(capacity))
        _write(bat / "status", status)
        _write(ac / "type", "Mains")
        _write(ac / "online", "1" if mains_online else "0")

    def flush(self) -> None:
        """Write the current state now rather than at the next poll."""
        self._write_thermal()

    def _write_thermal(self) -> None:
        self._since_write = 0.0
        for i, zone in enumerate(self.zones):
            millideg = round((self.model.temp_c + zone.offset_c) * 1000)
            _write(self.thermal_dir / f"thermal_zone{i}" / "temp", str(millideg))
        if self.cooling_state != self._written_cooling:
            _write(self.thermal_dir / "cooling_device0" / "cur_state", str(self.cooling_state))
            self._written_cooling = self.cooling_state
