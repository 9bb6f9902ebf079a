"""A local Unix socket where a running service answers ``edge-os ps``.

Protocol (version 1): the client connects, writes one JSON object and a newline, and reads one
JSON object and a newline back; the server then closes the connection.

    -> {"op": "status"}
    <- {"ok": true, "protocol": 1, "status": {...}}      (``SchedulerAPI.status()``)
    <- {"ok": false, "protocol": 1, "error": "..."}      (unknown op, malformed request)

The socket is created mode 0600: only the user who runs the service can ask it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from pathlib import Path

from edge_os.errors import SchedulerError
from edge_os.scheduler.api import SchedulerAPI

log = logging.getLogger(__name__)

PROTOCOL = 1
_MAX_REQUEST = 64 * 1024
_MAX_PATH = 100  # sun_path holds 108 bytes on Linux; keep clear of the edge


def _check_path(path: Path) -> None:
    if len(os.fsencode(path)) > _MAX_PATH:
        raise SchedulerError(f"socket path {path} is longer than {_MAX_PATH} bytes; choose a shorter --socket")


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < _MAX_REQUEST:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class StatusServer:
    """A front door that answers status queries; ``start(scheduler)`` binds, ``stop()`` unbinds."""

    name = "status-socket"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._scheduler: SchedulerAPI | None = None

    def start(self, scheduler: SchedulerAPI) -> None:
        _check_path(self.path)
        self._scheduler = scheduler
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            try:
                query(self.path, timeout=1.0)
            except SchedulerError:
                self.path.unlink()  # left behind by a service that died
            else:
                raise SchedulerError(
                    f"another edge-os service already answers at {self.path}; stop it or pass --socket"
                )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise SchedulerError(f"cannot listen on {self.path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        sock.listen(8)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="edge-os-status", daemon=True)
        self._thread.start()
        log.info("answering `edge-os ps` at %s", self.path)

    def stop(self) -> None:
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                conn.settimeout(5.0)
                try:
                    conn.sendall(json.dumps(self._answer(_read_line(conn))).encode() + b"\n")
                except OSError as exc:
                    log.debug("status client went away: %s", exc)

    def _answer(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            error = 'send one JSON object per line, e.g. {"op": "status"}'
            return {"ok": False, "protocol": PROTOCOL, "error": error}
        op = request.get("op") if isinstance(request, dict) else None
        if op != "status":
            return {"ok": False, "protocol": PROTOCOL, "error": f"unknown op {op!r}; supported: status"}
        return {"ok": True, "protocol": PROTOCOL, "status": self._scheduler.status()}


def query(path: Path | str, op: str = "status", timeout: float = 5.0) -> dict:
    """Ask the service at ``path``; returns the answer's ``status``. Raises ``SchedulerError``."""
    path = Path(path)
    _check_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps({"op": op}).encode() + b"\n")
        line = _read_line(sock)
    except (FileNotFoundError, ConnectionRefusedError):
        raise SchedulerError(f"no edge-os service answers at {path}; start one with `edge-os serve`") from None
    except OSError as exc:
        raise SchedulerError(f"cannot ask the service at {path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(line)
    except json.JSONDecodeError:
        raise SchedulerError(f"the service at {path} sent an unreadable answer") from None
    if not answer.get("ok"):
        raise SchedulerError(f"the service at {path} refused: {answer.get('error')}")
    return answer["status"]
