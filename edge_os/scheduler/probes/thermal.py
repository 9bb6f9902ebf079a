"""Temperatures, trip points and cooling devices from ``/sys/class/thermal``.

Layout read (all values are text files; temperatures in millidegrees Celsius)::

    thermal_zoneN/type                  e.g. cpu-thermal
    thermal_zoneN/temp                  e.g. 61500
    thermal_zoneN/trip_point_K_temp     e.g. 85000
    thermal_zoneN/trip_point_K_type     passive | active | hot | critical
    cooling_deviceN/type, cur_state, max_state
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_os.scheduler.probes._sysfs import read_int, read_text

log = logging.getLogger(__name__)

# Trip kinds at which the kernel itself throttles or shuts down; "active" only starts a fan.
THROTTLING_TRIPS = ("passive", "hot", "critical")


@dataclass(frozen=True)
class TripPoint:
    temp_c: float
    kind: str


@dataclass(frozen=True)
class ZoneReading:
    name: str  # the zone's type, e.g. "cpu-thermal"
    temp_c: float | None  # None when the sensor cannot be read right now
    trips: tuple[TripPoint, ...]


@dataclass(frozen=True)
class CoolingReading:
    name: str
    cur_state: int
    max_state: int


@dataclass(frozen=True)
class ThermalReading:
    zones: tuple[ZoneReading, ...]
    cooling: tuple[CoolingReading, ...]

    @property
    def hottest(self) -> ZoneReading | None:
        """The watched zone with the highest readable temperature."""
        readable = [z for z in self.zones if z.temp_c is not None]
        return max(readable, key=lambda z: z.temp_c, default=None)

    def lowest_trip_c(self, kinds: Iterable[str] = THROTTLING_TRIPS) -> float | None:
        """The lowest trip point of the given kinds over the watched zones (the device's own limit)."""
        kinds = tuple(kinds)
        temps = [t.temp_c for z in self.zones for t in z.trips if t.kind in kinds]
        return min(temps, default=None)

    @property
    def throttled_by_os(self) -> bool:
        """True if any cooling device is above its lowest state (the kernel is already throttling)."""
        return any(c.cur_state > 0 for c in self.cooling)


def _millideg(value: int | None) -> float | None:
    return value / 1000.0 if value is not None else None


def _zone_index(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else 0


class ThermalProbe:
    """Reads the zones named by the target descriptor (all zones when none is named or found)."""

    def __init__(self, root: Path | str = "/sys/class/thermal", zones: Iterable[str] = ()):
        self.root = Path(root)
        self.wanted = tuple(zones)
        self._warned_missing = False

    def read(self) -> ThermalReading:
        zones = [self._read_zone(p) for p in sorted(self.root.glob("thermal_zone*"), key=_zone_index)]
        zones = [z for z in zones if z is not None]
        if self.wanted:
            named = [z for z in zones if z.name in self.wanted]
            if not named and zones and not self._warned_missing:
                log.warning(
                    "none of the thermal zones %s exist under %s; watching all of %s",
                    ", ".join(self.wanted), self.root, ", ".join(z.name for z in zones),
                )
                self._warned_missing = True
            zones = named or zones
        cooling = [self._read_cooling(p) for p in sorted(self.root.glob("cooling_device*"), key=_zone_index)]
        return ThermalReading(zones=tuple(zones), cooling=tuple(c for c in cooling if c is not None))

    @staticmethod
    def _read_zone(path: Path) -> ZoneReading | None:
        name = read_text(path / "type")
        if name is None:
            return None
        trips = []
        for trip_file in sorted(path.glob("trip_point_*_temp"), key=lambda p: p.name):
            temp = _millideg(read_int(trip_file))
            kind = read_text(trip_file.with_name(trip_file.name.replace("_temp", "_type")))
            if temp is not None and kind is not None:
                trips.append(TripPoint(temp_c=temp, kind=kind))
        return ZoneReading(name=name, temp_c=_millideg(read_int(path / "temp")), trips=tuple(trips))

    @staticmethod
    def _read_cooling(path: Path) -> CoolingReading | None:
        name, cur, top = read_text(path / "type"), read_int(path / "cur_state"), read_int(path / "max_state")
        if name is None or cur is None or top is None:
            return None
        return CoolingReading(name=name, cur_state=cur, max_state=top)
