"""How much memory the device has and how much the rest of it leaves us: ``/proc/meminfo``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_os.errors import SchedulerError


@dataclass(frozen=True)
class MemoryReading:
    total_bytes: int  # MemTotal
    available_bytes: int  # MemAvailable: what can be allocated without swapping (page cache counts)


class MemoryProbe:
    """Reads ``MemTotal`` and ``MemAvailable`` from a meminfo file (``/proc/meminfo`` by default).

    MemAvailable, not MemFree, is the figure that matters: MemFree ignores reclaimable page cache
    and reads near zero on a busy device; on unified-memory boards (Jetson) the GPU allocates from
    this same pool, so it is the one number for CPU and GPU alike.
    """

    def __init__(self, path: Path | str = "/proc/meminfo"):
        self.path = Path(path)

    def read(self) -> MemoryReading:
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise SchedulerError(f"cannot read memory figures from {self.path}: {exc.strerror}") from exc
        fields: dict[str, int] = {}
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                scale = 1024 if parts[1:2] == ["kB"] else 1
                fields[name.strip()] = int(parts[0]) * scale
        if "MemTotal" not in fields:
            raise SchedulerError(f"{self.path} has no MemTotal line; is it a meminfo file?")
        # Kernels before 3.14 lack MemAvailable; free + page cache is the usual estimate there.
        available = fields.get("MemAvailable", fields.get("MemFree", 0) + fields.get("Cached", 0))
        return MemoryReading(total_bytes=fields["MemTotal"], available_bytes=available)
