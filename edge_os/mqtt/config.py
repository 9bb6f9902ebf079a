"""Typed configuration of the MQTT bridge and the cloud worker, and broker URL parsing.

``mqtt://HOST[:PORT]`` is plain TCP (port 1883 by default); ``mqtts://HOST[:PORT]`` is TLS (port
8883), verified against ``ca_file`` (or the system store) and optionally authenticated with a
client certificate. ``mqtt://USER:PASSWORD@HOST`` works, but the password is better given through
``EDGE_OS_MQTT_PASSWORD`` so it stays out of the process list.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edge_os.config import settings
from edge_os.errors import MqttError
from edge_os.mqtt.redact import RedactionConfig
from edge_os.mqtt.topics import check_device_id

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker is and how to authenticate to it."""

    host: str
    port: int = 1883
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 30

    def __post_init__(self) -> None:
        if (self.ca_file or self.cert_file or self.key_file) and not self.tls:
            raise MqttError("TLS files were given for an mqtt:// URL; use mqtts://HOST:PORT")
        if self.key_file and not self.cert_file:
            raise MqttError("a client key needs its certificate: give --mqtt-cert too")
        for f in (self.ca_file, self.cert_file, self.key_file):
            if f is not None and not Path(f).is_file():
                raise MqttError(f"TLS file {f} does not exist")
        if self.password is not None and self.username is None:
            raise MqttError("an MQTT password needs a user name (--mqtt-username or USER@ in the URL)")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> BrokerConfig:
        """Parse ``mqtt://`` / ``mqtts://`` URLs; explicit arguments win over the URL's user info."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise MqttError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise MqttError(f"broker URL {url!r} has no host; write mqtt://HOST:PORT")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise MqttError(f"broker URL {url!r} must be only mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT]")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise MqttError(f"broker URL {url!r} has a bad port: {exc}") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            username=username if username is not None else (unquote(parts.username) if parts.username else None),
            password=password if password is not None else (unquote(parts.password) if parts.password else None),
        )

    @property
    def url(self) -> str:
        """The URL without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: exponential growth with "equal jitter" (half fixed, half random), so a
    fleet of devices that lost the same broker does not reconnect in lock-step."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0 is the first retry)."""
        ceiling = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def answer_retention_from_env() -> float:
    """``EDGE_OS_MQTT_ANSWER_RETENTION`` in seconds, checked."""
    text = settings().mqtt_answer_retention
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise MqttError(f"EDGE_OS_MQTT_ANSWER_RETENTION must be a number of seconds >= 0 (got {text!r})")
    return seconds


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the device-side bridge needs besides its scheduler."""

    broker: BrokerConfig
    device_id: str = field(default_factory=lambda: settings().device_id)
    state_dir: Path | None = None  # default: $EDGE_OS_HOME/mqtt/{device_id}
    concurrency: int = 8  # requests handed to the scheduler at once; the rest wait on disk
    max_payload_bytes: int = 64 * 1024
    models: tuple[str, ...] = ()  # model names accepted (local or cloud); empty: any
    telemetry_interval_s: float = 30.0
    session_expiry_s: int = 7 * 24 * 3600
    dedup_ttl_s: float = 7 * 24 * 3600  # how long the keys of answered requests are remembered
    # How long an answer is kept to be sent again to a retry (the prompt is dropped when answered).
    answer_retention_s: float = field(default_factory=answer_retention_from_env)
    request_timeout_s: float = 600.0  # longest silence from the scheduler before giving up
    cloud_fallback: bool = True
    cloud_timeout_s: float = 120.0
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    backoff: Backoff = field(default_factory=Backoff)
    homeassistant: str | None = None  # discovery prefix for Home Assistant (None: no discovery)
    homeassistant_interval_s: float = 5.0  # how often the entities' state is published

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        if self.homeassistant is not None and (not self.homeassistant or any(c in self.homeassistant for c in "+#")
                                               or self.homeassistant.startswith(("/", "$"))):
            raise MqttError(f"Home Assistant discovery prefix {self.homeassistant!r} must be a topic without "
                            "wildcards, e.g. homeassistant")
        if self.concurrency < 1:
            raise MqttError(f"concurrency must be >= 1 (got {self.concurrency})")
        if self.telemetry_interval_s <= 0:
            raise MqttError(f"telemetry interval must be > 0 seconds (got {self.telemetry_interval_s})")
        if not 0 <= self.answer_retention_s <= self.dedup_ttl_s:
            raise MqttError(f"answer retention must be 0..{self.dedup_ttl_s:.0f} s (got {self.answer_retention_s})")

    @property
    def state_path(self) -> Path:
        """The SQLite file that holds the outbox and the request log."""
        base = self.state_dir or settings().home / "mqtt" / self.device_id
        return Path(base) / "bridge.sqlite3"


@dataclass(frozen=True)
class WorkerConfig:
    """The cloud worker: which broker, its client id, and where its state lives."""

    broker: BrokerConfig
    worker_id: str = "edge-os-cloud-worker"
    state_dir: Path | None = None  # default: $EDGE_OS_HOME/cloud-worker/{worker_id}
    concurrency: int = 4
    max_payload_bytes: int = 256 * 1024
    session_expiry_s: int = 7 * 24 * 3600
    dedup_ttl_s: float = 7 * 24 * 3600  # how long the keys of answered requests are remembered
    # How long an answer is kept to be sent again to a retry, as on the device.
    answer_retention_s: float = field(default_factory=answer_retention_from_env)
    prune_interval_s: float = 60.0  # how often the request log is pruned (and the WAL truncated)
    request_timeout_s: float = 600.0
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        check_device_id(self.worker_id)
        if not 0 <= self.answer_retention_s <= self.dedup_ttl_s:
            raise MqttError(f"answer retention must be 0..{self.dedup_ttl_s:.0f} s (got {self.answer_retention_s})")
        if self.prune_interval_s <= 0:
            raise MqttError(f"prune interval must be > 0 seconds (got {self.prune_interval_s})")

    @property
    def state_path(self) -> Path:
        base = self.state_dir or settings().home / "cloud-worker" / self.worker_id
        return Path(base) / "worker.sqlite3"
