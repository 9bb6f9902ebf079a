"""Battery and mains state from ``/sys/class/power_supply/*/`` (``type``, ``capacity``, ``status``, ``online``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_os.scheduler.probes._sysfs import read_int, read_text

_EXTERNAL = ("Mains", "USB", "USB_C", "USB_PD", "Wireless")


@dataclass(frozen=True)
class SupplyReading:
    name: str  # directory name, e.g. "BAT0"
    kind: str  # Battery, Mains, USB, ...
    capacity: int | None  # percent, batteries only
    status: str | None  # Charging, Discharging, Full, Not charging, Unknown
    online: bool | None  # external supplies only


@dataclass(frozen=True)
class PowerReading:
    supplies: tuple[SupplyReading, ...]

    @property
    def battery(self) -> SupplyReading | None:
        return next((s for s in self.supplies if s.kind == "Battery"), None)

    @property
    def on_battery(self) -> bool:
        """True when a battery powers the device: it discharges and no external supply is online."""
        battery = self.battery
        if battery is None:
            return False
        if any(s.online for s in self.supplies if s.kind in _EXTERNAL):
            return False
        return battery.status not in ("Charging", "Full")


class PowerProbe:
    """Reads every supply under ``root``; a device with no battery reads as mains-powered."""

    def __init__(self, root: Path | str = "/sys/class/power_supply"):
        self.root = Path(root)

    def read(self) -> PowerReading:
        supplies = []
        for path in sorted(self.root.glob("*")):
            kind = read_text(path / "type")
            if kind is None:
                continue
            online = read_int(path / "online")
            supplies.append(
                SupplyReading(
                    name=path.name,
                    kind=kind,
                    capacity=read_int(path / "capacity"),
                    status=read_text(path / "status"),
                    online=None if online is None else bool(online),
                )
            )
        return PowerReading(supplies=tuple(supplies))
