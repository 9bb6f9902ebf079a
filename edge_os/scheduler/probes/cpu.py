"""How many other tasks want the CPU now: ``/proc/loadavg`` against this process's own threads.

The fourth field of ``/proc/loadavg`` is ``RUNNABLE/TOTAL``: the kernel's count of tasks running
or waiting for a CPU at this instant. The ``R`` threads among ``/proc/self/task/*/stat`` are this
process's share of that count (the reading thread included); the rest belong to other programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_os.config import usable_cores
from edge_os.errors import SchedulerError


@dataclass(frozen=True)
class CpuReading:
    cores: int  # CPUs this process may run on
    others_runnable: int  # tasks of other programs running or waiting for a CPU at this instant


class CpuProbe:
    """Reads the runnable count from ``loadavg`` and this process's runnable threads from ``tasks``."""

    def __init__(self, loadavg: Path | str = "/proc/loadavg", tasks: Path | str = "/proc/self/task"):
        self.loadavg = Path(loadavg)
        self.tasks = Path(tasks)

    def read(self) -> CpuReading:
        try:
            runnable = int(self.loadavg.read_text().split()[3].split("/")[0])
        except OSError as exc:
            raise SchedulerError(f"cannot read the runnable task count from {self.loadavg}: {exc.strerror}") from exc
        except (IndexError, ValueError):
            raise SchedulerError(f"{self.loadavg} has no RUNNABLE/TOTAL field; is it a loadavg file?") from None
        return CpuReading(cores=usable_cores(), others_runnable=max(0, runnable - self._own_runnable()))

    def _own_runnable(self) -> int:
        count = 0
        for stat in self.tasks.glob("*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # the thread ended since the listing
                continue
            # "TID (comm) STATE ...": the name may hold spaces and parentheses, the state follows the last ')'
            count += text[text.rfind(")") + 1:].split()[:1] == ["R"]
        return count

