"""One MQTT v5 connection that stays up: paho underneath, reconnects with jittered backoff.

Each (re)connection uses a fresh paho client with the same client id, ``clean_start=False`` and
a session expiry, so the broker keeps subscriptions and queued QoS 1 messages across outages.
Nothing is retried from paho's in-memory queue: what must survive is in the outbox, which
re-sends everything unacknowledged after each connect.

Incoming messages are acknowledged (PUBACK) only after the handler returns, so a message the
handler could not persist is redelivered by the broker.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_os.errors import MqttError
from edge_os.mqtt.config import Backoff, BrokerConfig
from edge_os.mqtt.topics import publish_topic_problem

log = logging.getLogger(__name__)


class NotConnected(MqttError):
    """The broker is not reachable right now; the message was not handed to the network."""

    code = "mqtt_not_connected"


class Undeliverable(MqttError):
    """The message can never be published (a bad topic, a payload paho refuses): retrying is useless."""

    code = "mqtt_undeliverable"


@dataclass(frozen=True)
class Inbound:
    """A received message with the MQTT v5 properties the bridge uses."""

    topic: str
    payload: bytes
    response_topic: str | None
    correlation: bytes | None
    expiry_s: int | None  # remaining message expiry interval, as forwarded by the broker
    redelivered: bool  # the broker's DUP flag
    retained: bool  # replayed from the broker's store on subscribing, not sent just now


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = True


@dataclass
class Handlers:
    """Callbacks, all run on the network thread: keep them short."""

    message: Callable[[Inbound], None]
    connected: Callable[[], None] = lambda: None
    disconnected: Callable[[], None] = lambda: None
    acked: Callable[[int, int], None] = lambda mid, reason_code: None  # PUBACK reason code


class Connection:
    """Keeps a session with the broker until ``stop()``; see the module docstring."""

    def __init__(
        self,
        broker: BrokerConfig,
        client_id: str,
        subscriptions: tuple[str, ...],
        handlers: Handlers,
        *,
        will: Will | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        backoff: Backoff | None = None,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self._subscriptions = subscriptions
        self._handlers = handlers
        self._will = will
        self._session_expiry_s = session_expiry_s
        self._backoff = backoff or Backoff()
        self._rng = random.Random()
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._farewell: tuple[str, bytes] | None = None
        self._pending_suback: int | None = None
        self.connects = 0  # successful connections so far (tests and telemetry read it)

    @property
    def connected(self) -> bool:
        """Connected and subscribed."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()

    def stop(self, farewell: tuple[str, bytes] | None = None, timeout: float = 5.0) -> None:
        """Disconnect cleanly, first publishing ``farewell`` (topic, payload; retained) if connected."""
        self._farewell = farewell
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expiry_s: int | None = None,
    ) -> int:
        """Send at QoS 1 and return the message id that ``Handlers.acked`` will report.

        Raises ``NotConnected`` when offline (nothing is queued in memory), ``Undeliverable`` for a
        message no broker can take (checked before anything is sent) and ``MqttError`` if paho
        refuses the message for another reason.
        """
        for value in (topic,) if response_topic is None else (topic, response_topic):
            problem = publish_topic_problem(value)
            if problem is not None:
                raise Undeliverable(f"cannot publish with topic {str(value)[:80]!r}: {problem}")
        client = self._client
        if client is None or not self._connected.is_set():
            raise NotConnected(f"not connected to {self.broker.url}")
        props = Properties(PacketTypes.PUBLISH)
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        if expiry_s is not None:
            props.MessageExpiryInterval = max(1, int(expiry_s))
        try:
            info = client.publish(topic, payload, qos=1, retain=retain, properties=props)
        except (ValueError, TypeError) as exc:  # paho's own checks (payload too large, ...)
            raise Undeliverable(f"cannot publish to {topic[:80]!r}: {exc}") from None
        if info.rc == paho.MQTT_ERR_NO_CONN:
            raise NotConnected(f"connection to {self.broker.url} lost")
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info.mid

    # -- the network thread -------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                client = self._new_client()
                self._connect(client)
            except MqttError as exc:
                log.error("%s", exc)
            except ssl.SSLError as exc:
                log.error("TLS handshake with %s failed: %s", self.broker.url, exc)
            except (OSError, ValueError) as exc:
                log.info("MQTT broker %s unreachable: %s", self.broker.url, exc)
            else:
                self._client = client
                while not self._stopping.is_set() and client.loop(0.2) == paho.MQTT_ERR_SUCCESS:
                    pass
                if self._stopping.is_set() and self._connected.is_set():
                    self._say_goodbye(client)
                self._client = None
                if self._connected.is_set():
                    self._connected.clear()
                    attempt = 0
                    if not self._stopping.is_set():
                        log.warning("MQTT connection to %s lost", self.broker.url)
                    self._handlers.disconnected()
            if not self._stopping.is_set():
                self._stopping.wait(self._backoff.delay(attempt, self._rng))
                attempt += 1

    def _new_client(self) -> paho.Client:
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        client.max_inflight_messages_set(100)
        if self.broker.tls:
            try:
                client.tls_set(
                    ca_certs=str(self.broker.ca_file) if self.broker.ca_file else None,
                    certfile=str(self.broker.cert_file) if self.broker.cert_file else None,
                    keyfile=str(self.broker.key_file) if self.broker.key_file else None,
                )
            except (OSError, ValueError) as exc:
                raise MqttError(f"cannot load TLS files for {self.broker.url}: {exc}") from None
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self._will is not None:
            client.will_set(self._will.topic, self._will.payload, qos=1, retain=self._will.retain)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _connect(self, client: paho.Client) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        client.connect(
            self.broker.host,
            self.broker.port,
            keepalive=self.broker.keepalive_s,
            clean_start=False,
            properties=props,
        )

    def _on_connect(self, client: paho.Client, _userdata, flags, reason, _props) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the connection: %s", self.broker.url, reason)
            client.disconnect()
            return
        log.info("MQTT connected to %s (session present: %s)", self.broker.url, flags.session_present)
        if not self._subscriptions:
            self._ready()
            return
        # Idempotent with a stored session, and needed when the broker lost it.
        result, mid = client.subscribe([(topic, 1) for topic in self._subscriptions])
        self._pending_suback = mid if result == paho.MQTT_ERR_SUCCESS else None

    def _on_subscribe(self, client: paho.Client, _userdata, mid: int, reasons, _props) -> None:
        if mid != self._pending_suback:
            return
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("broker %s refused subscriptions %s: %s", self.broker.url, self._subscriptions, failed)
            client.disconnect()
            return
        self._ready()

    def _ready(self) -> None:
        log.info("MQTT session ready on %s, subscribed to %s", self.broker.url, list(self._subscriptions))
        self.connects += 1
        self._connected.set()
        self._handlers.connected()

    def _on_message(self, client: paho.Client, _userdata, msg: paho.MQTTMessage) -> None:
        props = msg.properties
        inbound = Inbound(
            topic=msg.topic,
            payload=bytes(msg.payload),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation=getattr(props, "CorrelationData", None),
            expiry_s=getattr(props, "MessageExpiryInterval", None),
            redelivered=bool(msg.dup),
            retained=bool(msg.retain),
        )
        try:
            self._handlers.message(inbound)
        except Exception:  # not acked: the broker redelivers it on the next connection
            log.exception("could not take message on %s; it will be redelivered", msg.topic)
            return
        client.ack(msg.mid, msg.qos)

    def _on_publish(self, _client, _userdata, mid: int, reason, _props) -> None:
        self._handlers.acked(mid, reason.value)

    def _say_goodbye(self, client: paho.Client) -> None:
        if self._farewell is not None:
            topic, payload = self._farewell
            info = client.publish(topic, payload, qos=1, retain=True)
            for _ in range(25):  # up to ~5 s for the PUBACK
                if info.is_published() or client.loop(0.2) != paho.MQTT_ERR_SUCCESS:
                    break
        client.disconnect()
        client.loop(0.2)
