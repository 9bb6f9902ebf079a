"""The JSON-able snapshot ``Scheduler.status()`` returns (and ``edge-os ps`` shows)."""

from __future__ import annotations

import math

from edge_os.scheduler._table import Job, LoadedModel
from edge_os.scheduler.catalog import Catalog
from edge_os.scheduler.policy import MemoryState
from edge_os.scheduler.probes import MemoryReading, PowerReading, ThermalReading


def model_rows(catalog: Catalog, models: dict[str, LoadedModel], now: float,
               retiring: list[LoadedModel] = ()) -> list[dict]:
    """One row per served model, then one per replaced version still finishing its requests."""
    rows = []
    for entry, loaded, replaced in [*((e, models.get(e.name), False) for e in catalog),
                                    *((m.entry, m, True) for m in retiring)]:
        keep_alive = None if math.isinf(entry.keep_alive_s) else entry.keep_alive_s  # None: for ever
        row = {"name": entry.name, "kind": entry.info.kind, "loaded": loaded is not None, "pinned": entry.pinned,
               "keep_alive_s": keep_alive, "context_length": entry.info.context_length,
               "version": entry.info.version, "package": entry.info.package, "replaced": replaced}
        if loaded is not None:
            view = loaded.view()
            row.update(resident_bytes=view.resident, kv_bytes=view.kv, active=view.active,
                       kv_reserved_tokens=loaded.reserved_tokens, kv_pool_tokens=entry.info.kv_pool_tokens,
                       threads=loaded.threads, idle_s=0.0 if view.active else now - view.last_used)
            cache = loaded.engine.prefix_cache  # the loop's own thread steps the engine: safe to read here
            if cache is not None:
                row["prefix_cache"] = cache.status()
        rows.append(row)
    return rows


def memory_section(mem: MemoryState, device: MemoryReading, pooled: bool, peak: int) -> dict:
    return {
        "budget_bytes": mem.budget,
        "accounted_bytes": mem.accounted,
        "peak_accounted_bytes": peak,
        "headroom_bytes": mem.headroom,
        "device_total_bytes": device.total_bytes,
        "device_available_bytes": device.available_bytes,
        "pooled": pooled,
    }


def thermal_section(reading: ThermalReading) -> dict:
    return {
        "zones": [{"name": z.name, "temp_c": z.temp_c, "trips_c": [t.temp_c for t in z.trips]} for z in reading.zones],
        "cooling": [{"name": c.name, "state": c.cur_state, "max_state": c.max_state} for c in reading.cooling],
        "kernel_throttling": reading.throttled_by_os,
    }


def power_section(reading: PowerReading) -> dict:
    battery = reading.battery
    return {"on_battery": reading.on_battery, "battery_pct": battery.capacity if battery else None}


def queue_section(queue: list[Job], max_queue: int) -> dict:
    background = sum(1 for j in queue if j.background)
    return {"waiting": len(queue), "interactive": len(queue) - background, "background": background, "max": max_queue}
