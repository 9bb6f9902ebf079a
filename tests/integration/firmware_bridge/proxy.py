"""A line-noise generator between the host and the simulator, on real ptys.

The host opens ``proxy.host_path`` (a fresh pty); the proxy relays bytes to and from the
simulator's pty, flipping bits, dropping bytes, inserting bytes and garbling bursts. It keeps the
books per direction: which frames it damaged, and which arrived intact after an intact delimiter
("clean"): a receiver that resynchronises within one frame accepts exactly the clean ones.
"""

from __future__ import annotations

import os
import random
import select
import threading
import tty
from dataclasses import dataclass, field

from firmware_bridge.framing import Frame, FrameDecoder


@dataclass(frozen=True)
class Noise:
    ber: float = 1e-3  # probability that any one bit is flipped
    drop: float = 1e-3  # probability that a byte is lost
    insert: float = 1e-3  # probability that a random byte is inserted before a byte
    burst: float = 1e-4  # probability that a burst of garbage starts at a byte
    burst_len: tuple[int, int] = (4, 16)


@dataclass
class Direction:
    """Counters of one direction."""

    frames: int = 0  # non-empty frames the sender sent
    damaged: int = 0  # frames with at least one byte changed, lost or added
    clean: int = 0  # intact frames that followed an intact delimiter
    bit_flips: int = 0
    drops: int = 0
    inserts: int = 0
    bursts: int = 0
    sent: list[Frame] = field(default_factory=list)  # what the sender meant, decoded
    _decoder: FrameDecoder = field(default_factory=FrameDecoder)
    _frame_damaged: bool = False
    _frame_len: int = 0
    _last_delimiter_arrived: bool = True
    _burst_left: int = 0


class CorruptingProxy:
    def __init__(self, device_path: str, noise: Noise, seed: int) -> None:
        self.noise = noise
        self._rng = random.Random(seed)
        self._device = os.open(device_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._device)
        self._host, slave = os.openpty()
        tty.setraw(slave)  # no echo of what we relay to the host
        self._slave = slave  # held open so the host may close and reopen its side
        self.host_path = os.ttyname(slave)
        self.to_device, self.to_host = Direction(), Direction()
        self.cut_to_host = threading.Event()  # while set, nothing reaches the host (unaccounted)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pump, args=(self._host, self._device, self.to_device), daemon=True),
            threading.Thread(target=self._pump, args=(self._device, self._host, self.to_host), daemon=True),
        ]
        self._lock = threading.Lock()  # one RNG, two threads
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        for fd in (self._device, self._host, self._slave):
            os.close(fd)

    def _pump(self, src: int, dst: int, books: Direction) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([src], [], [], 0.02)
            if not ready:
                continue
            data = os.read(src, 4096)
            if books is self.to_host and self.cut_to_host.is_set():
                continue
            books.sent += books._decoder.feed(data)
            with self._lock:
                out = b"".join(self._corrupt(b, books) for b in data)
            os.write(dst, out)

    def _corrupt(self, byte: int, books: Direction) -> bytes:
        rng, noise = self._rng, self.noise
        out = bytearray()
        if rng.random() < noise.insert:
            # Never 0x00: one inserted at a frame boundary would harm nothing, yet count as damage.
            # Zeros inside frames still come from bit flips and bursts.
            out.append(rng.randrange(1, 256))
            books.inserts += 1
        if books._burst_left == 0 and rng.random() < noise.burst:
            books._burst_left = rng.randint(*noise.burst_len)
            books.bursts += 1
        value = byte
        if books._burst_left:
            value ^= rng.randrange(1, 256)  # never XOR 0: a burst byte always differs
            books._burst_left -= 1
        for bit in range(8):
            if rng.random() < noise.ber:
                value ^= 1 << bit
                books.bit_flips += 1
        if rng.random() < noise.drop:
            books.drops += 1
        else:
            out.append(value)
        self._account(byte, bytes(out), books)
        return bytes(out)

    @staticmethod
    def _account(byte: int, out: bytes, books: Direction) -> None:
        damaged = out != bytes([byte])
        if byte != 0:
            books._frame_len += 1
            books._frame_damaged |= damaged
            return
        if books._frame_len:
            books.frames += 1
            if books._frame_damaged or damaged:
                books.damaged += 1
            elif books._last_delimiter_arrived:
                books.clean += 1
        # Bytes inserted before the delimiter belong to the frame; the next frame only suffers
        # if the delimiter itself did not arrive (then the two frames run together).
        books._last_delimiter_arrived = out.endswith(b"\x00")
        books._frame_len = 0
        books._frame_damaged = False
