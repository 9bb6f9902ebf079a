"""What the HTTP front door needs: where to listen, which keys to accept, limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from edge_os.api.agent_live import MAX_UNFINISHED
from edge_os.api.cloud import CloudConfig
from edge_os.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class HttpConfig:
    """``edge-os serve --http`` settings.

    ``packages`` are the served package directories (for /v1/models details and /tokenize);
    ``api_keys`` empty means no key is needed. ``max_body_bytes`` caps a request body;
    ``request_timeout_s`` is how long a request may go without an event from the scheduler;
    ``cloud`` (optional) answers the requests the device refuses; ``max_agent_runs`` caps the
    agent runs (``stream``/``background``) unfinished at once.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    packages: tuple[Path, ...] = ()
    api_keys: frozenset[str] = frozenset()
    max_body_bytes: int = 1 << 20
    request_timeout_s: float = 600.0
    default_max_tokens: int = 256
    cloud: CloudConfig | None = None
    max_agent_runs: int = MAX_UNFINISHED

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` (``[::1]:8080`` for IPv6) -> (host, port)."""
    text = text.strip()
    host, port_text = DEFAULT_HOST, str(DEFAULT_PORT)
    if text.isdigit():
        port_text = text
    elif text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise InputError(f"--http {text!r}: expected [IPV6]:PORT")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host_part, port_text = text.split(":")
        host = host_part or DEFAULT_HOST
    elif text.count(":") > 1:
        raise InputError(f"--http {text!r}: write IPv6 addresses in brackets, e.g. [::1]:8080")
    elif text:
        host = text
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(f"--http {text!r}: the port must be a number from 0 to 65535, e.g. 127.0.0.1:8080")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_keys(path: Path | None, env_value: str | None) -> frozenset[str]:
    """Keys from a file (one a line, ``#`` comments and blank lines skipped) and from
    ``EDGE_OS_API_KEYS`` (comma-separated)."""
    keys: set[str] = set()
    if path is not None:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.add(line)
        if not keys:
            raise InputError(f"--api-key-file {path} holds no key; write one key per line")
    if env_value:
        keys.update(k.strip() for k in env_value.split(",") if k.strip())
    return frozenset(keys)
