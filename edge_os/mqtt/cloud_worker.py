"""The cloud side of the fallback: serves ``edge-os/cloud/req`` with a backend.

It is reliable the same way the device is: persistent session, requests recorded before they
are acknowledged, answers through the durable outbox, and duplicates answered from the record
instead of being run twice. Its answers say ``served_by: cloud``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from edge_os.mqtt.config import WorkerConfig
from edge_os.mqtt.connection import Connection, Handlers
from edge_os.mqtt.durable import Durable
from edge_os.mqtt.server import Limits, RequestServer
from edge_os.mqtt.topics import cloud_request_topic
from edge_os.scheduler.api import SchedulerAPI

log = logging.getLogger(__name__)


class CloudWorker:
    def __init__(self, backend: SchedulerAPI, config: WorkerConfig) -> None:
        self.config = config
        self._durable = d = Durable.open(config.state_path)
        self._server = RequestServer(
            backend,
            d.requests,
            d.answers,
            Limits(config.max_payload_bytes, (), config.request_timeout_s),
            served_by="cloud",
            concurrency=config.concurrency,
        )
        self._connection = Connection(
            config.broker,
            config.worker_id,
            (cloud_request_topic(),),
            Handlers(
                message=self._server.handle,
                connected=d.sender.connected,
                disconnected=d.sender.disconnected,
                acked=d.sender.acked,
            ),
            session_expiry_s=config.session_expiry_s,
            backoff=config.backoff,
        )
        d.attach(self._connection)
        self._stopped = False

    def start(self) -> CloudWorker:
        self._durable.sender.start()
        self._server.start()
        self._connection.start()
        log.info("cloud worker %s on %s", self.config.worker_id, self.config.broker.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and close the state file (after any worker that outlives ``timeout``)."""
        if self._stopped:
            return
        self._stopped = True
        late = self._server.stop(timeout)
        self._connection.stop()
        self._durable.close_after(late)

    def __enter__(self) -> CloudWorker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connection.wait_connected(timeout)

    def stats(self) -> dict[str, Any]:
        return {"requests": asdict(self._server.stats), "outbox": len(self._durable.outbox)}

