"""The cloud side of the fallback: serves ``edge-os/cloud/req`` with a backend.

It is reliable the same way the device is: persistent session, requests recorded before they
are acknowledged, answers through the durable outbox, and duplicates answered from the record
instead of being run twice. Its answers say ``served_by: cloud``. Like the device it forgets
what it answered: each answer after ``answer_retention_s``, each request's key after
``dedup_ttl_s`` (pruned every ``prune_interval_s``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from typing import Any

from edge_os.mqtt.config import WorkerConfig
from edge_os.mqtt.connection import Connection, Handlers
from edge_os.mqtt.durable import Durable, outlived
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
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None

    def start(self) -> CloudWorker:
        self._durable.sender.start()
        self._server.start()
        self._connection.start()
        self._housekeeper = threading.Thread(target=self._housekeep, name="cloud-housekeeping", daemon=True)
        self._housekeeper.start()
        log.info("cloud worker %s on %s", self.config.worker_id, self.config.broker.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and close the state file (after any worker that outlives ``timeout``)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        late = outlived([self._housekeeper], timeout) + self._server.stop(timeout)
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

    def _housekeep(self) -> None:
        while not self._stopping.wait(self.config.prune_interval_s):
            try:
                forgotten = self._durable.requests.prune(self.config.dedup_ttl_s, self.config.answer_retention_s)
                self._durable.store.checkpoint()
                if forgotten:
                    log.debug("forgot %d answered request(s)", forgotten)
            except Exception:
                log.exception("pruning the cloud worker's request log failed; trying again next time")
