"""Sends the outbox through the connection, keeping a bounded window of messages in flight.

One thread owns the in-flight table (message id -> outbox row). Acks and connection changes
arrive from the network thread as events on a queue, so the two threads never wait on each
other's locks (paho calls back while holding its own).

A request handed to the cloud that the broker acknowledges with "no matching subscribers" (no
cloud worker is subscribed, or none has ever been) is not done: it stays in the outbox and is
offered again every ``park_s`` seconds until its expiry. Answers are done on any success code:
a requester that is not listening chose not to keep a session.

A row that can never be delivered (paho or the broker refuses its topic) is dead-lettered with
a log line; a row that fails for another reason is skipped until the next connection. Either
way the rows after it go out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from edge_os.errors import MqttError
from edge_os.mqtt.connection import Connection, NotConnected, Undeliverable
from edge_os.mqtt.outbox import Kind, Outbox, OutMessage

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 0x10
_FIRST_FAILURE_CODE = 0x80


class OutboxSender:
    """Publishes outbox rows in id order and deletes each one on its PUBACK."""

    def __init__(self, outbox: Outbox, window: int = 50, park_s: float = 2.0) -> None:
        self._outbox = outbox
        self._window = window
        self._park_s = park_s
        self._connection: Connection | None = None
        self._events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._in_flight: dict[int, OutMessage] = {}  # paho mid -> outbox row
        self._parked: dict[int, tuple[float, OutMessage]] = {}  # outbox id -> (retry at, row)
        self._last_sent = 0  # highest outbox id handed to the current connection
        self._online = False
        self._thread: threading.Thread | None = None
        self.sent = 0  # publishes, re-sends after reconnects included
        self.delivered = 0  # PUBACKs
        self.dead_lettered = 0  # rows given up for good

    def attach(self, connection: Connection) -> None:
        self._connection = connection

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._events.put(("stop",))
        if self._thread is not None:
            self._thread.join(5)

    # Called from any thread.
    def notify(self) -> None:
        """New rows are in the outbox."""
        self._events.put(("wake",))

    def connected(self) -> None:
        self._events.put(("up",))

    def disconnected(self) -> None:
        self._events.put(("down",))

    def acked(self, mid: int, reason_code: int) -> None:
        self._events.put(("ack", mid, reason_code))

    def _run(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=self._park_s / 2 if self._parked else None)
            except queue.Empty:
                event = ("wake",)
            kind = event[0]
            if kind == "stop":
                return
            if kind in ("up", "down"):
                # Rows in flight or parked stay in the outbox; "up" re-sends them from the top.
                self._online, self._last_sent = kind == "up", 0
                self._in_flight.clear()
                self._parked.clear()
            elif kind == "ack":
                self._on_ack(event[1], event[2])
            try:
                self._retry_parked()
                self._fill_window()
            except Exception:  # a broken row must not stop delivery of the others
                log.exception("outbox delivery failed; retrying on the next event")

    def _on_ack(self, mid: int, reason_code: int) -> None:
        message = self._in_flight.pop(mid, None)
        if message is None:
            return  # a direct publish (delta, status) or an ack from an earlier connection
        if reason_code == NO_MATCHING_SUBSCRIBERS and message.kind is Kind.CLOUD:
            log.info("no cloud worker subscribed yet; request %s waits", message.request_key)
            self._parked[message.id] = (time.monotonic() + self._park_s, message)
            return
        if reason_code >= _FIRST_FAILURE_CODE:
            self._dead_letter(message, f"the broker refused it (PUBACK reason {reason_code:#x})")
            return
        self._outbox.remove(message.id)
        self.delivered += 1

    def _dead_letter(self, message: OutMessage, reason: str) -> None:
        log.error(
            "outbox message %d (%s, request %s) to %.80r can never be delivered: %s; moved to the dead letters",
            message.id, message.kind.value, message.request_key, message.topic, reason,
        )  # fmt: skip
        self._outbox.dead_letter(message, reason)
        self.dead_lettered += 1

    def _retry_parked(self) -> None:
        if not self._online:
            return
        now = time.monotonic()
        for row_id, (retry_at, message) in list(self._parked.items()):
            if retry_at <= now:
                try:
                    mid = self._send(message)
                except NotConnected:
                    self._online = False
                    return
                except MqttError as exc:
                    log.warning("outbox message %d to %.80r not sent: %s", message.id, message.topic, exc)
                    mid = None
                del self._parked[row_id]
                if mid is not None:
                    self._in_flight[mid] = message

    def _fill_window(self) -> None:
        if not self._online or self._connection is None:
            return
        free = self._window - len(self._in_flight)  # parked rows do not hold answers back
        while free > 0:
            batch = self._outbox.after(self._last_sent, free)
            if not batch:
                return
            for message in batch:
                try:
                    mid = self._send(message)
                except NotConnected:
                    self._online = False  # "down" is on its way; "up" restarts from the top
                    return
                except Exception as exc:  # noqa: BLE001 (this row only: the next connection offers it again)
                    log.warning("outbox message %d to %.80r not sent: %s", message.id, message.topic, exc)
                    mid = None
                self._last_sent = message.id
                if mid is not None:
                    self._in_flight[mid] = message
                    free -= 1

    def _send(self, message: OutMessage) -> int | None:
        """Publish one row; returns its mid, or None when it expired and was dropped."""
        expiry_s = None
        if message.expires is not None:
            expiry_s = message.expires - time.time()
            if expiry_s <= 0:
                log.info("outbox message %d to %s expired unsent; dropped", message.id, message.topic)
                self._outbox.remove(message.id)
                return None
        assert self._connection is not None
        try:
            mid = self._connection.publish(
                message.topic,
                message.payload,
                response_topic=message.response_topic,
                correlation=message.correlation,
                expiry_s=None if expiry_s is None else max(1, int(expiry_s)),
            )
        except Undeliverable as exc:
            self._dead_letter(message, str(exc))
            return None
        self.sent += 1
        return mid
