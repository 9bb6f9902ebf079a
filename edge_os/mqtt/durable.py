"""The durable parts every MQTT endpoint shares: the SQLite file, the request log, the outbox,
its sender and the answer writer, opened and closed together."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_os.mqtt.answers import Answers
from edge_os.mqtt.connection import Connection
from edge_os.mqtt.dedup import RequestLog
from edge_os.mqtt.delivery import OutboxSender
from edge_os.mqtt.outbox import Outbox
from edge_os.mqtt.store import Store

log = logging.getLogger(__name__)


@dataclass
class Durable:
    store: Store
    requests: RequestLog
    outbox: Outbox
    sender: OutboxSender
    answers: Answers

    @classmethod
    def open(cls, path: Path) -> Durable:
        store = Store(path)
        requests = RequestLog(store)
        outbox = Outbox(store)
        sender = OutboxSender(outbox)
        return cls(store, requests, outbox, sender, Answers(store, requests, outbox, sender))

    def attach(self, connection: Connection) -> None:
        self.sender.attach(connection)
        self.answers.attach(connection)

    def close(self) -> None:
        self.sender.stop()
        self.store.close()

    def close_after(self, late: list[threading.Thread]) -> None:
        """Close now, or, while ``late`` threads (workers that outlived a stop) may still record
        answers, on a closer thread once they have all ended; never under a live writer."""
        if not late:
            self.close()
            return
        path = self.store.path
        log.warning("%d MQTT thread(s) still running after stop (%s): a request the scheduler has not let go of; "
                    "the state file %s stays open until they end", len(late), ", ".join(t.name for t in late), path)

        def close_when_done() -> None:
            for thread in late:
                thread.join()
            self.close()
            log.info("the late MQTT thread(s) ended; state file %s closed", path)

        threading.Thread(target=close_when_done, name="mqtt-late-close", daemon=True).start()


def outlived(threads: list[threading.Thread | None], timeout: float) -> list[threading.Thread]:
    """Join ``threads`` within ``timeout`` seconds in all; the ones still running after it."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
    return [thread for thread in threads if thread is not None and thread.is_alive()]
