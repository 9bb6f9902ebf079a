"""The HTTP API as a front door of ``edge-os serve`` (``edge_os.scheduler.service.FrontDoor``).

```python
serve(options, front_doors=[HttpFrontDoor(HttpConfig(host="127.0.0.1", port=8080, packages=paths))])
```

uvicorn runs on its own thread with its own event loop; the socket is bound in ``start`` so a
port in use is a one-line error before the service reports that it is serving.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from edge_os.api.config import HttpConfig
from edge_os.errors import InputError
from edge_os.scheduler.api import SchedulerAPI

log = logging.getLogger(__name__)


class HttpFrontDoor:
    """Serves the OpenAI-compatible API on ``config.host:config.port`` until ``stop()``."""

    name = "http"

    def __init__(self, config: HttpConfig, agent=None) -> None:
        self.config = config
        self.agent = agent  # an edge_os.api.agent_runs.AgentRuns: POST /v1/agent/runs
        self.port: int | None = None  # the bound port (useful with port 0)
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self, scheduler: SchedulerAPI) -> None:
        import uvicorn

        from edge_os.api.app import build_app

        app = build_app(scheduler, self.config, agent=self.agent)
        sock = _bind(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http-api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise InputError(f"the HTTP API did not start on {self.url}; see the log above")
        if not self.config.loopback and not self.config.api_keys:
            log.warning("the HTTP API listens on %s without API keys: anyone who can reach it may use it; "
                        "give --api-key-file or EDGE_OS_API_KEYS", self.config.host)
        log.info("HTTP API on %s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port if self.port is not None else self.config.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} for --http: {exc.strerror or exc}; "
                         "choose another port or stop what uses it") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
