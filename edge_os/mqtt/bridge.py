"""The device-side MQTT bridge: requests in, answers out, status, telemetry and cloud fallback.

```python
with MqttBridge(scheduler, BridgeConfig(BrokerConfig.from_url("mqtt://hub:1883"), device_id="cam-7")):
    ...  # serves until the block ends
```

Topics and payloads are described in docs/mqtt.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict
from typing import Any

from edge_os.mqtt import telemetry
from edge_os.mqtt.agent_door import AgentDoor
from edge_os.mqtt.config import BridgeConfig
from edge_os.mqtt.connection import Connection, Handlers, Inbound, NotConnected, Will
from edge_os.mqtt.durable import Durable, outlived
from edge_os.mqtt.fallback import CloudFallback
from edge_os.mqtt.homeassistant import Discovery
from edge_os.mqtt.outbox import Kind
from edge_os.mqtt.server import Limits, RequestServer
from edge_os.mqtt.topics import event_topic_root, request_topics, status_topic, telemetry_topic
from edge_os.scheduler.api import SchedulerAPI
from edge_os.scheduler.fallback import FallbackPolicy

log = logging.getLogger(__name__)

_TICK_S = 0.5
_PRUNE_EVERY_S = 60.0


class MqttBridge:
    """Serves a scheduler over MQTT until ``stop()``; see the module docstring."""

    def __init__(self, scheduler: SchedulerAPI, config: BridgeConfig, agent=None) -> None:
        """``agent`` (an ``edge_os.api.agent_runs.AgentRuns``) also serves agent requests (``agent_door``)."""
        self.config = config
        self._scheduler = scheduler
        self._durable = Durable.open(config.state_path)
        d = self._durable
        self._fallback = (
            CloudFallback(
                config.device_id,
                d.store,
                d.requests,
                d.outbox,
                d.sender,
                d.answers,
                FallbackPolicy(config.redaction, config.cloud_timeout_s),
            )
            if config.cloud_fallback
            else None
        )
        self._server = RequestServer(
            scheduler,
            d.requests,
            d.answers,
            Limits(config.max_payload_bytes, config.models, config.request_timeout_s),
            served_by="local",
            concurrency=config.concurrency,
            on_refused=self._fallback.forward if self._fallback else None,
        )
        self._agent = (
            AgentDoor(agent, scheduler, config.device_id, d.outbox, d.sender) if agent is not None else None
        )
        subscriptions = request_topics(config.device_id)
        if self._agent is not None:
            subscriptions += self._agent.topics
        if self._fallback is not None:
            subscriptions += (self._fallback.response_topic,)
        self._discovery = (
            Discovery(config.device_id, config.homeassistant, self._publish_retained)
            if config.homeassistant is not None
            else None
        )
        self._next_discovery = 0.0
        if self._discovery is not None:
            subscriptions += self._discovery.subscriptions
        self._mcu = None  # the microcontroller's sensors and actuators as entities (edge_os.mqtt.ha_mcu)
        if self._discovery is not None and getattr(agent, "device", None) is not None:
            from edge_os.mqtt.ha_mcu import McuDoor

            self._mcu = McuDoor(config.device_id, config.homeassistant, agent, self._publish_retained,
                                config.homeassistant_interval_s)
            subscriptions += self._mcu.subscriptions
        self._connection = Connection(
            config.broker,
            f"edge-os-{config.device_id}",
            subscriptions,
            Handlers(
                message=self._dispatch,
                connected=self._on_connected,
                disconnected=d.sender.disconnected,
                acked=d.sender.acked,
            ),
            will=Will(status_topic(config.device_id), telemetry.status(config.device_id, online=False)),
            session_expiry_s=config.session_expiry_s,
            backoff=config.backoff,
        )
        d.attach(self._connection)
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None

    def start(self) -> MqttBridge:
        """Resume unfinished work and start connecting (returns at once; see ``wait_connected``)."""
        self._durable.sender.start()
        self._server.start()
        if self._agent is not None:
            self._agent.start()
        if self._mcu is not None:
            self._mcu.start()
        self._connection.start()
        self._housekeeper = threading.Thread(target=self._housekeep, name="mqtt-housekeeping", daemon=True)
        self._housekeeper.start()
        log.info("MQTT bridge for device %s on %s", self.config.device_id, self.config.broker.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline``, disconnect, and close the state file. Requests still running stay
        recorded and resume on the next start.

        Workers get ``timeout`` seconds to let go; one still inside a request after that (the
        scheduler did not release it) may yet record its answer, so the state file is then closed
        by a closer thread once the last such worker has ended, never under it (both logged)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        late = outlived([self._housekeeper], timeout) + self._server.stop(timeout)
        if self._agent is not None:
            late += self._agent.stop(timeout)
        if self._mcu is not None:
            try:
                self._mcu.stop()  # its entities stay, unavailable
            except NotConnected:
                log.warning("offline at stop: the microcontroller's link still shows online (the bridge's status "
                            "goes offline by the broker's last will)")
        device = self.config.device_id
        self._connection.stop(farewell=(status_topic(device), telemetry.status(device, False)))
        self._durable.close_after(late)

    def __enter__(self) -> MqttBridge:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connection.wait_connected(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters of the bridge (also sent in telemetry)."""
        d = self._durable
        return {
            "connected": self._connection.connected,
            "connects": self._connection.connects,
            "requests": asdict(self._server.stats),
            "backlog": self._server.backlog,
            "request_states": d.requests.counts(),
            "outbox": len(d.outbox),
            "sent": d.sender.sent,
            "delivered": d.sender.delivered,
            "dead_lettered": d.sender.dead_lettered,
            "answers_resent": d.answers.resent,
            "fallback": asdict(self._fallback.stats) if self._fallback else None,
        }

    def publish_event(self, name: str, body: dict[str, Any]) -> None:
        """Queue ``body`` (JSON) durably for ``edge-os/{device_id}/events/{name}`` (a pipeline's)."""
        topic = f"{event_topic_root(self.config.device_id)}/{name}"
        self._durable.outbox.put(Kind.EVENT, topic, json.dumps(body, default=str).encode())
        self._durable.sender.notify()

    def _publish_retained(self, topic: str, payload: bytes, retain: bool) -> None:
        self._connection.publish(topic, payload, retain=retain)

    def _dispatch(self, msg: Inbound) -> None:
        if self._mcu is not None and self._mcu.handles(msg.topic):
            self._mcu.received(msg.topic, msg.payload, msg.retained)
        elif self._discovery is not None and self._discovery.handles(msg.topic):
            self._discovery.received(msg.topic, msg.payload)
            self._next_discovery = 0.0
            birth = msg.topic == self._discovery.subscriptions[0] and msg.payload.strip() == b"online"
            if self._mcu is not None and birth:
                self._mcu.forget()  # Home Assistant's birth message: every config again
        elif self._fallback is not None and msg.topic == self._fallback.response_topic:
            self._fallback.handle(msg)
        elif self._agent is not None and msg.topic in self._agent.topics:
            self._agent.handle(msg)
        else:
            self._server.handle(msg)

    def _on_connected(self) -> None:
        try:
            self._connection.publish(
                status_topic(self.config.device_id), telemetry.status(self.config.device_id, True), retain=True
            )
        except NotConnected:
            pass  # lost again already; the next connect publishes it
        if self._discovery is not None:
            self._discovery.forget()
            self._next_discovery = 0.0
        if self._mcu is not None:
            self._mcu.forget()
        self._durable.sender.connected()

    def _sync_mcu(self) -> None:
        """Every tick: a reading or an acknowledged state goes out at once (whatever else fails)."""
        if self._mcu is None or not self._connection.connected:
            return
        try:
            self._mcu.sync()
        except NotConnected:
            self._mcu.forget()
        except Exception:
            log.exception("publishing the microcontroller's entities failed; trying again next tick")

    def _housekeep(self) -> None:
        next_telemetry = time.monotonic()
        next_prune = time.monotonic()
        while not self._stopping.wait(_TICK_S):
            try:
                now = time.monotonic()
                if self._fallback is not None:
                    self._fallback.expire()
                if self._discovery is not None and now >= self._next_discovery and self._connection.connected:
                    self._next_discovery = now + self.config.homeassistant_interval_s
                    try:
                        self._discovery.sync(self._scheduler.status())
                    except NotConnected:
                        self._discovery.forget()  # all again once connected
                self._sync_mcu()
                if now >= next_telemetry:
                    next_telemetry = now + self.config.telemetry_interval_s
                    payload = telemetry.telemetry(self.config.device_id, self._scheduler, self.stats())
                    self._durable.outbox.put(Kind.TELEMETRY, telemetry_topic(self.config.device_id), payload)
                    self._durable.sender.notify()
                if now >= next_prune:
                    next_prune = now + _PRUNE_EVERY_S
                    self._durable.requests.prune(self.config.dedup_ttl_s, self.config.answer_retention_s)
                    self._durable.store.checkpoint()
            except Exception:
                log.exception("MQTT housekeeping failed; trying again next tick")

