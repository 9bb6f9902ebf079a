"""Readers of the device's own interfaces: /proc/meminfo, /proc/loadavg, /sys/class/thermal,
/sys/class/power_supply.

Each probe takes the directory (or file) it reads, so tests point it at a fake tree in the same
layout (see ``tests.simulated_sysfs``) and the real reader runs.
"""

from edge_os.scheduler.probes.cpu import CpuProbe, CpuReading
from edge_os.scheduler.probes.memory import MemoryProbe, MemoryReading
from edge_os.scheduler.probes.power import PowerProbe, PowerReading, SupplyReading
from edge_os.scheduler.probes.thermal import CoolingReading, ThermalProbe, ThermalReading, TripPoint, ZoneReading

__all__ = [
    "CoolingReading",
    "CpuProbe",
    "CpuReading",
    "MemoryProbe",
    "MemoryReading",
    "PowerProbe",
    "PowerReading",
    "SupplyReading",
    "ThermalProbe",
    "ThermalReading",
    "TripPoint",
    "ZoneReading",
]
