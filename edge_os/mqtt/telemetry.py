"""Payloads of the retained status message and the periodic telemetry message."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from edge_os import __version__
from edge_os.scheduler.api import SchedulerAPI

log = logging.getLogger(__name__)


def status(device_id: str, online: bool) -> bytes:
    """``{"device_id", "state": "online"|"offline", "ts", "version"}``; retained, and the will."""
    state = "online" if online else "offline"
    body = {"device_id": device_id, "state": state, "ts": time.time(), "version": __version__}
    return json.dumps(body).encode()


def telemetry(device_id: str, scheduler: SchedulerAPI, bridge: dict[str, Any]) -> bytes:
    """The scheduler's ``status()`` snapshot (models, memory, temperatures, governor, tok/s,
    queue) as it reports it, plus the bridge's own counters."""
    try:
        snapshot: dict[str, Any] = scheduler.status()
    except Exception as exc:  # telemetry must not stop because one probe failed
        log.warning("scheduler status failed: %s", exc)
        snapshot = {"error": f"{type(exc).__name__}: {exc}"}
    body = {"device_id": device_id, "ts": time.time(), "scheduler": snapshot, "bridge": bridge}
    return json.dumps(body, default=str).encode()
