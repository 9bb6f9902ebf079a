"""One serial link: a reader thread, stop-and-wait requests with retransmission, reconnection.

The link knows frames, not sensors: :class:`firmware_bridge.device.Device` gives them meaning.
Requests go one at a time (stop-and-wait): a microcontroller answers in well under a millisecond,
so pipelining would only add state to the device, which keeps one cached answer per session to
recognise retransmissions (PROTOCOL.md, "Reliability").
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from firmware_bridge.errors import NotAnswering, PortError
from firmware_bridge.framing import Frame, FrameDecoder, Reject, encode_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkConfig:
    """Timing of one link. The defaults suit USB-serial adapters at 115200 baud."""

    timeout: float = 0.25  # seconds to wait for an answer before retransmitting
    retries: int = 3  # retransmissions after the first attempt
    backoff: float = 1.0  # each retransmission waits this many times longer than the one before...
    max_timeout: float | None = None  # ...up to this (None: no limit)
    reconnect_interval: float = 0.5  # seconds between attempts to reopen a vanished port
    baudrate: int = 115200
    read_timeout: float = 0.02  # how long one read blocks; bounds how fast close() returns

    def wait_s(self, attempt: int) -> float:
        """Seconds to wait for an answer to attempt ``attempt`` (0 is the first sending)."""
        wait = self.timeout * self.backoff ** min(attempt, 64)
        return wait if self.max_timeout is None else min(wait, self.max_timeout)


@dataclass(frozen=True)
class LinkStats:
    """Counters since the link was created."""

    frames_ok: int  # frames that passed every check
    crc_errors: int  # frames dropped for a CRC mismatch
    framing_errors: int  # frames dropped for bad COBS, length, version, or overflow
    retries: int  # retransmitted requests
    failures: int  # requests that got no answer after every retransmission
    drops: int  # unsolicited frames (stream readings, logs) lost, from gaps in their sequence
    stale: int  # answers that matched no waiting request (late answers to retransmissions)
    reconnects: int  # times the port was reopened after it went away


@dataclass
class _Pending:
    seq: int
    done: threading.Event = field(default_factory=threading.Event)
    answer: Frame | None = None


class Link:
    """A serial port opened by URL (``/dev/ttyUSB0``, ``loop://``, ``socket://host:port``,
    ``rfc2217://host:port``) carrying protocol frames.

    ``on_unsolicited`` is called on the reader thread for every frame the device sends on its
    own (stream readings, logs); ``on_reconnect`` on a fresh thread after the port came back;
    ``trace`` on the reader thread for every accepted frame.
    """

    def __init__(
        self,
        url: str,
        config: LinkConfig | None = None,
        *,
        on_unsolicited: Callable[[Frame], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        trace: Callable[[Frame], None] | None = None,
    ) -> None:
        self.url = url
        self.config = config or LinkConfig()
        self.on_unsolicited = on_unsolicited
        self.on_reconnect = on_reconnect
        self.trace = trace
        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()
        self._request_lock = threading.Lock()
        self._pending: _Pending | None = None
        self._decoder = FrameDecoder()
        self._seq = random.randrange(0x10000)  # a new session never reuses the last one's seqs
        self._last_unsolicited: int | None = None
        self._closed = threading.Event()
        self._reader: threading.Thread | None = None
        self._counts = dict(frames_ok=0, retries=0, failures=0, drops=0, stale=0, reconnects=0)

    # -- lifetime ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the port and start the reader thread; raises PortError if it cannot be opened."""
        self._port = self._open_port()
        self._reader = threading.Thread(target=self._read_loop, name=f"link {self.url}", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._closed.set()
        if self._reader is not None:
            self._reader.join()
        with self._port_lock:
            if self._port is not None:
                self._port.close()
                self._port = None

    def __enter__(self) -> Link:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def stats(self) -> LinkStats:
        rejects = self._decoder.rejects
        crc = rejects[Reject.BAD_CRC]
        return LinkStats(crc_errors=crc, framing_errors=sum(rejects.values()) - crc, **self._counts)

    # -- requests ---------------------------------------------------------------------------

    def request(self, type_: int, payload: bytes = b"", *, retries: int | None = None) -> Frame:
        """Send one request and return the device's answer (any type: ACK, NACK, READING...).

        The same bytes, with the same sequence number, are sent again after each timeout, so the
        device can tell a retransmission from a new request: retransmitting is safe for every
        request, COMMAND included. Raises NotAnswering at the end.
        """
        retries = self.config.retries if retries is None else retries
        with self._request_lock:
            self._seq = (self._seq + 1) & 0xFFFF
            pending = _Pending(self._seq)
            data = encode_frame(Frame(type=type_, seq=pending.seq, payload=payload))
            self._pending = pending
            try:
                for attempt in range(retries + 1):
                    if attempt:
                        self._counts["retries"] += 1
                    self._write(data)
                    if pending.done.wait(self.config.wait_s(attempt)):
                        assert pending.answer is not None
                        return pending.answer
            finally:
                self._pending = None
        self._counts["failures"] += 1
        raise NotAnswering(f"device on {self.url} did not answer after {retries + 1} attempts")

    def _write(self, data: bytes) -> None:
        with self._port_lock:
            port = self._port
        if port is None:
            return  # the port is away: this attempt is lost like a corrupted frame
        try:
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            log.debug("write to %s failed: %s", self.url, exc)

    # -- reader thread ----------------------------------------------------------------------

    def _open_port(self) -> serial.SerialBase:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.config.baudrate, timeout=self.config.read_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            # pyserial repeats the OS's text inside its own ("could not open port X: [Errno 2] ..."):
            # the errno says it once.
            reason = os.strerror(exc.errno) if isinstance(getattr(exc, "errno", None), int) else str(exc)
            reason = re.sub(r"^(?i:could not open port) \S+: (\[Errno \d+\] )?", "", reason)
            raise PortError(f"cannot open serial port {self.url}: {reason}") from exc
        port.write(b"\x00")  # ends any partial frame the device holds from before
        return port

    def _read_loop(self) -> None:
        while not self._closed.is_set():
            port = self._port
            if port is None:
                self._reopen()
                continue
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                log.warning("lost %s: %s", self.url, exc)
                with self._port_lock:
                    self._port = None
                port.close()
                continue
            for frame in self._decoder.feed(data):
                self._dispatch(frame)

    def _reopen(self) -> None:
        if self._closed.wait(self.config.reconnect_interval):
            return
        try:
            port = self._open_port()
        except PortError:
            return
        self._decoder.feed(b"\x00")  # forget bytes of the old connection
        self._last_unsolicited = None
        with self._port_lock:
            self._port = port
        self._counts["reconnects"] += 1
        log.info("reconnected to %s", self.url)
        if self.on_reconnect is not None:
            # Not on this thread: the callback will make requests whose answers this thread reads.
            threading.Thread(target=self.on_reconnect, name=f"reconnect {self.url}", daemon=True).start()

    def _dispatch(self, frame: Frame) -> None:
        self._counts["frames_ok"] += 1
        if self.trace is not None:
            self.trace(frame)
        if frame.is_response:
            pending = self._pending
            if pending is not None and frame.seq == pending.seq and not pending.done.is_set():
                pending.answer = frame
                pending.done.set()
            else:
                self._counts["stale"] += 1
            return
        if self._last_unsolicited is not None:
            gap = (frame.seq - self._last_unsolicited - 1) & 0xFFFF
            if gap < 0x8000:  # a larger "gap" is a device restart, not a loss
                self._counts["drops"] += gap
        self._last_unsolicited = frame.seq
        if self.on_unsolicited is not None:
            self.on_unsolicited(frame)
