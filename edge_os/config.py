"""The one place where edge-os reads environment variables.

Each variable is declared once in ``ENV_VARS`` (name, default, meaning); ``--help`` prints the
table and the README documents it. Code asks for values through ``settings()``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    meaning: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("EDGE_OS_HOME", "~/.cache/edge-os", "cache for packed models (the default model is packed here once)"),
    EnvVar("EDGE_OS_THREADS", "the cores other work leaves idle (serve: followed while it runs)",
           "threads the engine uses when --threads is not given"),
    EnvVar("EDGE_OS_PREFILL_CHUNK", "64",
           "most prompt tokens an engine step carries beside the running streams; it carries what "
           "fills 8 rows (0: whole prompts at once, the streams waiting)"),
    EnvVar("EDGE_OS_LOG_LEVEL", "INFO", "log level: DEBUG, INFO, WARNING, ERROR"),
    EnvVar("EDGE_OS_TARGET", "host", "target descriptor used by `pack` when --target is not given"),
    EnvVar("EDGE_OS_MEMORY_BUDGET", "target's memory_fraction of MemTotal", "scheduler memory budget, e.g. 2G or 512M"),
    EnvVar("EDGE_OS_KEEP_ALIVE", "300", "seconds an idle model stays loaded (inf: until evicted)"),
    EnvVar("EDGE_OS_MAX_QUEUE", "64", "requests the scheduler lets wait before refusing with queue_full"),
    EnvVar("EDGE_OS_SOCKET", "$EDGE_OS_HOME/scheduler.sock", "Unix socket where `serve` answers `ps`"),
    EnvVar("EDGE_OS_DEVICE_ID", "host name", "device id in the MQTT topic tree when --device-id is not given"),
    EnvVar("EDGE_OS_MQTT_ANSWER_RETENTION", "3600",
           "seconds the MQTT bridge and the cloud worker keep an answer to send again to a retry"),
    EnvVar("EDGE_OS_MQTT_PASSWORD", "unset",
           "MQTT password (kept off the command line; the user name is --mqtt-username)"),
    EnvVar("EDGE_OS_OPENAI_API_KEY", "unset", "bearer token for the OpenAI-compatible cloud"
           " (cloud-worker --openai-url, serve --cloud-url)"),
    EnvVar("EDGE_OS_API_KEYS", "unset", "comma-separated API keys `serve --http` accepts as bearer tokens"),
)


@dataclass(frozen=True)
class Settings:
    home: Path
    threads: int
    threads_given: bool  # EDGE_OS_THREADS is set (else ``threads`` is ``default_threads()``)
    prefill_chunk: int
    log_level: str
    target: str
    # Scheduler settings stay text here; edge_os.scheduler.config parses them with clear errors.
    memory_budget: str
    keep_alive: str
    max_queue: str
    socket: Path
    device_id: str
    mqtt_answer_retention: str  # parsed by edge_os.mqtt.config
    mqtt_password: str | None
    openai_api_key: str | None
    api_keys: str | None


def settings() -> Settings:
    """Read the environment now (tests may change it between calls)."""
    env = os.environ
    threads_text = env.get("EDGE_OS_THREADS", "")
    threads = int(threads_text) if threads_text.strip().isdigit() else default_threads()
    chunk_text = env.get("EDGE_OS_PREFILL_CHUNK", "")
    home = Path(env.get("EDGE_OS_HOME", "~/.cache/edge-os")).expanduser()
    return Settings(
        home=home,
        threads=max(1, threads),
        threads_given=threads_text.strip().isdigit(),
        prefill_chunk=int(chunk_text) if chunk_text.strip().isdigit() else 64,
        log_level=env.get("EDGE_OS_LOG_LEVEL", "INFO").upper(),
        target=env.get("EDGE_OS_TARGET", "host"),
        memory_budget=env.get("EDGE_OS_MEMORY_BUDGET", ""),
        keep_alive=env.get("EDGE_OS_KEEP_ALIVE", "300"),
        max_queue=env.get("EDGE_OS_MAX_QUEUE", "64"),
        socket=Path(env.get("EDGE_OS_SOCKET", "") or home / "scheduler.sock").expanduser(),
        device_id=env.get("EDGE_OS_DEVICE_ID") or socket.gethostname(),
        mqtt_answer_retention=env.get("EDGE_OS_MQTT_ANSWER_RETENTION", "3600"),
        mqtt_password=env.get("EDGE_OS_MQTT_PASSWORD") or None,
        openai_api_key=env.get("EDGE_OS_OPENAI_API_KEY") or None,
        api_keys=env.get("EDGE_OS_API_KEYS") or None,
    )


def default_threads() -> int:
    """The cores this process may use, less those other work keeps busy (the 1-minute load
    average, rounded): a thread pool that waits at every kernel for a worker the OS has
    descheduled runs slower than a smaller pool, so with one busy neighbour on 2 cores, 1 thread.
    ``serve`` keeps following the neighbours while it runs (``edge_os.scheduler.cpu_share``)."""
    try:
        busy = round(os.getloadavg()[0])
    except OSError:  # no load average on this system
        busy = 0
    return max(1, usable_cores() - busy)


def usable_cores() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def env_help() -> str:
    """The environment-variable table shown at the end of ``edge-os --help``."""
    width = max(len(v.name) for v in ENV_VARS)
    lines = ["environment variables:"]
    lines += [f"  {v.name:<{width}}  {v.meaning} (default: {v.default})" for v in ENV_VARS]
    return "\n".join(lines)
