"""A microcontroller on a serial link: its capabilities, sensor readings, streams and commands.

Synchronous and thread-safe; :mod:`firmware_bridge.aio` wraps it for asyncio.

    with Device.open("/dev/ttyUSB0") as dev:
        print(dev.read("temperature"))
        dev.command("fan", 128)
"""

from __future__ import annotations

import logging
import queue
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from firmware_bridge.capability_cache import CapabilityCache
from firmware_bridge.errors import DeviceError, InputError, Refused
from firmware_bridge.framing import Frame
from firmware_bridge.link import Link, LinkConfig, LinkStats
from firmware_bridge.messages import (
    COMMAND,
    DIGEST,
    HELLO_DIGEST,
    MIN_PERIOD_MS,
    SUBSCRIBE,
    ActuatorInfo,
    Capabilities,
    MsgType,
    PayloadError,
    Reading,
    SensorInfo,
    decode_hello,
    decode_log,
    decode_nack,
    decode_reading,
)

log = logging.getLogger(__name__)
device_log = logging.getLogger("firmware_bridge.firmware")  # LOG messages from devices
_LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
T = TypeVar("T")


@dataclass
class Subscription:
    """An active stream of one sensor's readings; ``close()`` stops it on the device."""

    device: Device
    sensor: SensorInfo
    period_ms: int
    on_reading: Callable[[Reading], None]

    def close(self) -> None:
        self.device._unsubscribe(self)


class ReadingStream:
    """Readings of a subscription, buffered for a consumer that iterates at its own pace."""

    def __init__(self, device: Device, sensor: str, period_s: float, maxsize: int = 1024) -> None:
        self._queue: queue.Queue[Reading] = queue.Queue(maxsize)
        self._subscription = device.subscribe(sensor, period_s, self._put)

    def _put(self, reading: Reading) -> None:
        try:
            self._queue.put_nowait(reading)
        except queue.Full:  # a consumer that stopped reading must not stall the reader thread
            log.warning("dropping a %s reading: nobody is consuming the stream", reading.sensor)

    def get(self, timeout: float | None = None) -> Reading:
        """The next reading; raises DeviceError if none arrives within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise DeviceError(f"no {self._subscription.sensor.name} reading within {timeout} s") from None

    def __iter__(self) -> Iterator[Reading]:
        while True:
            yield self._queue.get()

    def close(self) -> None:
        self._subscription.close()

    def __enter__(self) -> ReadingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Device:
    """A device that spoke HELLO on ``link``. Use :meth:`open` rather than the constructor."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.capabilities: Capabilities | None = None
        self._subscriptions: dict[int, Subscription] = {}
        link.on_unsolicited = self._on_unsolicited
        link.on_reconnect = self._on_reconnect

    @classmethod
    def open(
        cls,
        url: str,
        config: LinkConfig | None = None,
        *,
        hello_retries: int | None = None,
        cache: CapabilityCache | None = None,
    ) -> Device:
        """Open ``url``, do the HELLO handshake and return the device.

        With ``cache``, the handshake is the compact one (:meth:`hello_cached`). Raises PortError
        if the port cannot be opened and NotAnswering if nothing answers HELLO.
        """
        link = Link(url, config)
        link.open()
        device = cls(link)
        try:
            if cache is None:
                device.hello(retries=hello_retries)
            else:
                device.hello_cached(cache, retries=hello_retries)
        except BaseException:
            link.close()
            raise
        return device

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        caps = self.capabilities
        return f"{caps.firmware} {caps.version} on {self.link.url}" if caps else self.link.url

    @property
    def stats(self) -> LinkStats:
        return self.link.stats

    # -- requests ---------------------------------------------------------------------------

    def hello(self, retries: int | None = None) -> Capabilities:
        """Start a session (the device forgets older subscriptions) and read its capabilities."""
        answer = self._call(MsgType.HELLO, b"", MsgType.HELLO, "HELLO", retries=retries)
        self.capabilities = self._decode(decode_hello, answer.payload)
        return self.capabilities

    def hello_cached(self, cache: CapabilityCache, retries: int | None = None) -> Capabilities:
        """Start a session with a compact HELLO: the device answers with the CRC-32 of its
        capabilities, found in ``cache``. Only on a miss are the full capabilities fetched (with
        ``retries``) and added to it. Firmware without the compact HELLO answers in full."""
        answer = self._call(MsgType.HELLO, HELLO_DIGEST, MsgType.HELLO, "HELLO (compact)")
        if len(answer.payload) != DIGEST.size:  # an older firmware sent everything
            self.capabilities = self._decode(decode_hello, answer.payload)
            return self.capabilities
        (digest,) = DIGEST.unpack(answer.payload)
        cached = cache.get(digest)
        if cached is not None:
            self.capabilities = cached
            return cached
        log.debug("capabilities %08x of %s are not cached yet; asking for them in full", digest, self.link.url)
        full = self._call(MsgType.HELLO, b"", MsgType.HELLO, "HELLO", retries=retries)
        self.capabilities = self._decode(decode_hello, full.payload)
        if zlib.crc32(full.payload) == digest:
            cache.put(full.payload)
        return self.capabilities

    def read(self, sensor: str) -> Reading:
        """One reading of ``sensor``, sampled now."""
        info = self.sensor(sensor)
        answer = self._call(MsgType.READ, bytes([info.id]), MsgType.READING, f"READ {sensor}")
        return self._reading(answer.payload)

    def subscribe(self, sensor: str, period_s: float, on_reading: Callable[[Reading], None]) -> Subscription:
        """Stream ``sensor`` every ``period_s`` seconds to ``on_reading`` (called on the reader
        thread, so it must be quick). A device keeps one stream per sensor: subscribing again
        replaces the previous subscription."""
        info = self.sensor(sensor)
        period_ms = round(period_s * 1000)
        if period_ms < MIN_PERIOD_MS:
            raise InputError(f"period {period_s} s is too short: the shortest is {MIN_PERIOD_MS / 1000} s")
        subscription = Subscription(self, info, period_ms, on_reading)
        previous = self._subscriptions.get(info.id)
        self._subscriptions[info.id] = subscription  # before sending: the first reading may be quick
        try:
            self._call(MsgType.SUBSCRIBE, SUBSCRIBE.pack(info.id, period_ms), MsgType.ACK, f"SUBSCRIBE {sensor}")
        except DeviceError:
            if previous is None:
                del self._subscriptions[info.id]
            else:
                self._subscriptions[info.id] = previous
            raise
        return subscription

    def stream(self, sensor: str, period_s: float) -> ReadingStream:
        """Like :meth:`subscribe`, but buffered: iterate the result or call ``get()``."""
        return ReadingStream(self, sensor, period_s)

    def command(self, actuator: str, value: int) -> None:
        """Set ``actuator`` to ``value`` and wait for the device's ACK.

        The value is checked against the actuator's allowed values before anything is sent.
        Raises Refused if the device answers NACK and NotAnswering if it never answers; in that
        case the command may or may not have run (but never ran twice).
        """
        info = self.actuator(actuator)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"value for {actuator} must be an integer, not {value!r}")
        if not info.allows(value):
            raise InputError(f"{value} is not allowed for {actuator}: use {info.describe_allowed()}")
        self._call(MsgType.COMMAND, COMMAND.pack(info.id, value), MsgType.ACK, f"COMMAND {actuator}={value}")

    def ping(self, data: bytes = b"edge-os") -> float:
        """Round-trip time in seconds of a PING whose PONG must echo ``data``."""
        if len(data) > self._caps().max_payload:
            raise InputError(f"PING data of {len(data)} bytes exceeds the device's {self._caps().max_payload}")
        start = time.monotonic()
        answer = self._call(MsgType.PING, data, MsgType.PONG, "PING")
        if answer.payload != data:
            raise DeviceError(f"{self.name} answered PING with different data")
        return time.monotonic() - start

    # -- names ------------------------------------------------------------------------------

    def sensor(self, name: str) -> SensorInfo:
        for info in self._caps().sensors:
            if info.name == name:
                return info
        known = ", ".join(s.name for s in self._caps().sensors) or "none"
        raise InputError(f"unknown sensor {name!r} on {self.name} (sensors: {known})")

    def actuator(self, name: str) -> ActuatorInfo:
        for info in self._caps().actuators:
            if info.name == name:
                return info
        known = ", ".join(a.name for a in self._caps().actuators) or "none"
        raise InputError(f"unknown actuator {name!r} on {self.name} (actuators: {known})")

    # -- internals --------------------------------------------------------------------------

    def _caps(self) -> Capabilities:
        if self.capabilities is None:
            raise DeviceError(f"no HELLO from {self.link.url} yet")
        return self.capabilities

    def _call(self, type_: MsgType, payload: bytes, expect: MsgType, what: str, retries: int | None = None) -> Frame:
        answer = self.link.request(type_, payload, retries=retries)
        if answer.type == MsgType.NACK:
            error = self._decode(decode_nack, answer.payload)
            reason = error.name if hasattr(error, "name") else f"error {error}"
            raise Refused(f"{self.name} refused {what}: {reason}", error)
        if answer.type != expect:
            raise DeviceError(f"{self.name} answered {what} with message type {answer.type}, expected {expect.name}")
        return answer

    def _decode(self, decoder: Callable[[bytes], T], payload: bytes) -> T:
        try:
            return decoder(payload)
        except PayloadError as exc:
            raise DeviceError(f"{self.name} sent a malformed payload: {exc}") from exc

    def _reading(self, payload: bytes) -> Reading:
        sensor_id, value, device_ms = self._decode(decode_reading, payload)
        info = next((s for s in self._caps().sensors if s.id == sensor_id), None)
        if info is None:
            raise DeviceError(f"{self.name} sent a reading of unknown sensor id {sensor_id}")
        # The value travelled as binary32: keep the digits it carries, not float64 noise.
        return Reading(info.name, float(f"{value:.7g}"), info.unit, device_ms)

    def _unsubscribe(self, subscription: Subscription) -> None:
        if self._subscriptions.get(subscription.sensor.id) is not subscription:
            return  # replaced or already closed
        del self._subscriptions[subscription.sensor.id]
        payload = SUBSCRIBE.pack(subscription.sensor.id, 0)
        self._call(MsgType.SUBSCRIBE, payload, MsgType.ACK, f"SUBSCRIBE {subscription.sensor.name} off")

    def _on_unsolicited(self, frame: Frame) -> None:
        try:
            if frame.type == MsgType.READING:
                reading = self._reading(frame.payload)
                subscription = self._subscriptions.get(self.sensor(reading.sensor).id)
                if subscription is not None:
                    subscription.on_reading(reading)
            elif frame.type == MsgType.LOG:
                level, text = self._decode(decode_log, frame.payload)
                # %r: the device's text is untrusted; repr shows every control character as an escape
                device_log.log(_LOG_LEVELS[min(level, 3)], "%r: %r", self.name, text)
        except DeviceError as exc:
            log.warning("ignoring a message from %s: %r", self.link.url, str(exc))

    def _on_reconnect(self) -> None:
        """The port came back (a replugged cable, a rebooted board): new session, same streams."""
        try:
            self.hello()
            for sub in list(self._subscriptions.values()):
                self._call(MsgType.SUBSCRIBE, SUBSCRIBE.pack(sub.sensor.id, sub.period_ms), MsgType.ACK, "SUBSCRIBE")
        except DeviceError as exc:
            log.warning("%s came back but the new session failed: %s", self.link.url, exc)
