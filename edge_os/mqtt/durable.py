"""The durable parts every MQTT endpoint shares: the SQLite file, the request log, the outbox,
its sender and the answer writer, opened and closed together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_os.mqtt.answers import Answers
from edge_os.mqtt.connection import Connection
from edge_os.mqtt.dedup import RequestLog
from edge_os.mqtt.delivery import OutboxSender
from edge_os.mqtt.outbox import Outbox
from edge_os.mqtt.store import Store


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
