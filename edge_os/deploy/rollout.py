"""``edge-os rollout``: OTA jobs to a fleet in waves; a wave whose failures pass the limit is
rolled back and the rollout stops."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from edge_os.deploy.ota import PRESENCE_WILDCARD, send_job
from edge_os.errors import DeployError, EdgeOSError, InputError
from edge_os.mqtt.config import BrokerConfig


@dataclass
class Row:
    device: str
    wave: int
    state: str = "skipped"  # succeeded, failed, rolled back, skipped
    version: int | None = None
    reason: str = ""


def discover(broker: BrokerConfig, wait_s: float = 10.0, quiet_s: float = 1.0) -> tuple[list[str], list[str]]:
    """Devices that take OTA jobs, found by their retained ``edge-os/ID/ota/device`` messages
    (``edge_os.deploy.ota.presence``): (online ids, offline ids), each sorted. Retained messages
    come right after the subscription; collecting stops once none came for ``quiet_s``."""
    from edge_os.mqtt.connection import Connection, Handlers, Inbound

    states: dict[str, str] = {}
    last = [time.monotonic()]
    lock = threading.Lock()

    def on_message(message: Inbound) -> None:
        parts = message.topic.split("/")
        try:
            state = json.loads(message.payload).get("state") if message.payload else None
        except (ValueError, AttributeError):
            return
        with lock:
            if state:
                states[parts[1]] = state
            last[0] = time.monotonic()

    conn = Connection(broker, f"edge-os-rollout-{uuid.uuid4().hex[:8]}", (PRESENCE_WILDCARD,),
                      Handlers(message=on_message), session_expiry_s=0)
    conn.start()
    try:
        if not conn.wait_connected(30):
            raise DeployError(f"cannot reach the MQTT broker {broker.url}; check it is running")
        last[0] = time.monotonic()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and time.monotonic() - last[0] < quiet_s:
            time.sleep(0.05)
    finally:
        conn.stop()
    with lock:
        return (sorted(d for d, s in states.items() if s == "online"),
                sorted(d for d, s in states.items() if s != "online"))


def wave_sizes(text: str, devices: int) -> list[int]:
    """``1,10,50%`` → how many devices each wave adds; each item is the total reached after that
    wave (a count or a percentage), and a last wave takes the rest."""
    totals = []
    for item in text.split(","):
        item = item.strip()
        try:
            total = int(devices * float(item[:-1]) / 100 + 0.999) if item.endswith("%") else int(item)
        except ValueError:
            raise InputError(f"--waves item {item!r} is not a count or a percentage; write e.g. 1,10,50%") from None
        if total < 1:
            raise InputError(f"--waves {text!r}: every wave must reach at least 1 device")
        totals.append(min(total, devices))
    if not totals or totals[-1] < devices:
        totals.append(devices)
    sizes, done = [], 0
    for total in totals:
        if total > done:
            sizes.append(total - done)
            done = total
    return sizes


def rollout(broker: BrokerConfig, devices: list[str], url: str, waves: list[int], max_failures: int,
            timeout: float, on_wave=lambda wave, rows: None) -> list[Row]:
    """Run the waves; returns one row per device."""
    rows = {d: Row(d, 0) for d in devices}
    start, failures = 0, 0
    for number, size in enumerate(waves, 1):
        wave = devices[start:start + size]
        start += size
        with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
            results = dict(zip(wave, pool.map(lambda d: _job(broker, d, timeout, url=url), wave), strict=True))
        for device, status in results.items():
            row = rows[device]
            row.wave, row.state, row.version = number, status["state"], status.get("version")
            row.reason = status.get("reason", "")
            failures += row.state != "succeeded"
        if failures > max_failures:
            with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
                done = [d for d in wave if rows[d].state == "succeeded"]
                names = [results[d].get("name") or "" for d in done]
                backs = dict(zip(done, pool.map(lambda d, n: _job(broker, d, timeout, action="rollback", name=n),
                                                done, names), strict=True))
            for device, status in backs.items():
                rows[device].state = "rolled back" if status["state"] == "succeeded" else "rollback failed"
                rows[device].version = status.get("version")
                rows[device].reason = f"rollout stopped after {failures} failures (limit {max_failures})"
            on_wave(number, [rows[d] for d in wave])
            break
        on_wave(number, [rows[d] for d in wave])
    return list(rows.values())


def _job(broker: BrokerConfig, device: str, timeout: float, **job) -> dict:
    try:
        return send_job(broker, device, job.pop("url", ""), timeout, **job)
    except EdgeOSError as exc:
        return {"state": "failed", "reason": str(exc)}


def table(rows: list[Row]) -> str:
    lines = [f"{'device':<16} {'wave':>4}  {'state':<12} {'version':>7}  reason"]
    lines += [f"{r.device:<16} {r.wave or '-':>4}  {r.state:<12} {r.version if r.version is not None else '-':>7}  "
              f"{r.reason}" for r in rows]
    return "\n".join(lines)
