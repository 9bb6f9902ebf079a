"""The on-device scheduler: admission, eviction, KV pages and thermal throttling.

Front doors need only ``SchedulerAPI`` (``submit``/``status``); a service builds a ``Scheduler``
from a ``Catalog`` of ``package_entry`` models and a ``SchedulerConfig`` (see docs/scheduler.md).
"""

from edge_os.scheduler.catalog import Catalog, ModelEntry, ModelInfo, package_entry
from edge_os.scheduler.config import SchedulerConfig, config_for_target
from edge_os.scheduler.loop import Scheduler

__all__ = ["Catalog", "ModelEntry", "ModelInfo", "Scheduler", "SchedulerConfig", "config_for_target", "package_entry"]
