"""Real parts for MQTT tests: a mosquitto broker on a free loopback port, and a requester.

The broker runs with persistence in a temp dir and saves after every change, so ``kill()``
(SIGKILL) followed by ``start()`` behaves like a power cut of the hub.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.waiting import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A mosquitto process with a config of our own; can be killed and restarted on its port."""

    def __init__(self, workdir: Path, port: int | None = None, listener_conf: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        listener = listener_conf or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        self.conf.write_text(
            f"{listener}"
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {self.data}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
            "max_queued_messages 100000\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.starts += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()} {log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not open its port within 10 s")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class Requester:
    """An MQTT v5 client that asks questions and collects answers by correlation data.

    It keeps a persistent session (answers published while it is disconnected are delivered on
    reconnect) and reconnects by itself, as an IoT hub's client would.
    """

    def __init__(self, port: int, name: str, subscribe: tuple[str, ...] = (), tls: dict | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.name = name
        self.response_topic = f"test/{name}/res"
        self.received: list[tuple[str, bytes | None, dict]] = []  # (topic, correlation, body)
        self.acked: set[bytes] = set()  # correlation data of requests the broker acknowledged
        self._mids: dict[int, bytes] = {}
        self._early_acks: set[int] = set()  # PUBACKs that arrived before ask() recorded their mid
        self._subscriptions = (self.response_topic, *subscribe)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{name}", protocol=paho.MQTTv5)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self._connected.clear()
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        if tls is not None:
            self.client.tls_set(**tls)
        if auth is not None:
            self.client.username_pw_set(*auth)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        assert self._connected.wait(10), "requester could not connect"

    def _on_connect(self, client, _u, _flags, reason, _props) -> None:
        if not reason.is_failure:
            for topic in self._subscriptions:
                client.subscribe(topic, qos=1)
            self._connected.set()

    def _on_publish(self, _c, _u, mid: int, _reason, _props) -> None:
        with self._lock:
            corr = self._mids.pop(mid, None)
            if corr is not None:
                self.acked.add(corr)
            else:
                self._early_acks.add(mid)

    def _on_message(self, _c, _u, msg) -> None:
        corr = getattr(msg.properties, "CorrelationData", None)
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"raw": msg.payload.decode(errors="replace")}
        with self._lock:
            self.received.append((msg.topic, corr, body))

    def ask(
        self,
        body: dict | bytes,
        correlation: bytes | None,
        *,
        topic: str,
        expiry_s: int | None = None,
        response_topic: str | None = "",
        retain: bool = False,
    ) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            props.ResponseTopic = response_topic or self.response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        if expiry_s is not None:
            props.MessageExpiryInterval = expiry_s
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        # Our lock is not held across publish(): paho's network thread holds its own lock while it
        # calls _on_publish, so holding ours here could deadlock. A PUBACK that beats us to the
        # mid is kept in _early_acks instead.
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        with self._lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                if correlation is not None:
                    self.acked.add(correlation)
            elif correlation is not None:
                self._mids[info.mid] = correlation

    def answers(self, correlation: bytes, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [b for t, c, b in self.received if c == correlation and (kind is None or b.get("type") == kind)]

    def on_topic(self, topic: str) -> list[dict]:
        with self._lock:
            return [b for t, _c, b in self.received if t == topic]

    def final(self, correlation: bytes, timeout: float = 10) -> dict:
        """The first final or error answer to ``correlation``."""
        return wait_until(
            lambda: next((b for b in self.answers(correlation) if b.get("type") in ("final", "error")), None),
            timeout,
            what=f"an answer to {correlation!r}",
        )

    def close(self) -> None:
        self.client.disconnect()  # wakes the network thread, so loop_stop does not wait out its select
        self.client.loop_stop()


def run_env() -> dict[str, str]:
    """Environment for edge-os subprocesses: this checkout importable, test helpers included."""
    root = Path(__file__).resolve().parent.parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return env
