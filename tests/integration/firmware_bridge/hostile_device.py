"""A device on a real pty that speaks the protocol correctly but sends hostile content: names
and logs with terminal escape sequences, NaN and infinite readings, readings outside the range it
declared itself. Protocol-wise it is an older firmware (it ignores the compact HELLO's payload).
The C simulator cannot be made to say these things, which is why this one is in Python."""

from __future__ import annotations

import math
import os
import select
import struct
import threading
import tty

from firmware_bridge.framing import FLAG_RESPONSE, Frame, FrameDecoder, encode_frame
from firmware_bridge.messages import (
    COMMAND,
    ActuatorInfo,
    Capabilities,
    ErrorCode,
    MsgType,
    SensorInfo,
    encode_hello,
)

ESCAPES = ("\x1b[2J", "\x1b]0;pwned\x07", "\x9b31m", "\u202e")
CAPS = Capabilities(
    firmware="evil\x1b]0;pwned\x07fw",
    version="6.6\x1b[2J",
    max_payload=240,
    sensors=(
        SensorInfo(0, "temp\x1b[31m", "\x9b1m°C", -40.0, 125.0),
        SensorInfo(1, "humidity", "%", 0.0, 100.0),
        SensorInfo(2, "light", "%", 0.0, 100.0),
        SensorInfo(3, "fine", "", 0.0, 10.0),
        SensorInfo(4, "unbounded", "", math.nan, math.inf),
    ),
    actuators=(ActuatorInfo(0, "fan\u202eX", "pwm", min=0, max=255), ActuatorInfo(1, "relay", "", values=(0, 1))),
)
VALUES = {0: math.nan, 1: math.inf, 2: 250.0, 3: 5.0, 4: -1e30}
LOG_TEXT = "\x1b[2Jscreen cleared\x1b]0;retitled\x07"


class HostileDevice:
    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.commands: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._tx_seq = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._master)
        os.close(self._slave)

    def _send(self, frame: Frame) -> None:
        os.write(self._master, encode_frame(frame))

    def _serve(self) -> None:
        decoder = FrameDecoder()
        while not self._stop.is_set():
            if not select.select([self._master], [], [], 0.02)[0]:
                continue
            for request in decoder.feed(os.read(self._master, 4096)):
                kind, payload = self._answer(request)
                self._send(Frame(type=kind, seq=request.seq, payload=payload, flags=FLAG_RESPONSE))
                if request.type == MsgType.HELLO:
                    self._send(Frame(type=MsgType.LOG, seq=self._tx_seq, payload=bytes([2]) + LOG_TEXT.encode()))
                    self._tx_seq += 1

    def _answer(self, request: Frame) -> tuple[int, bytes]:
        if request.type == MsgType.HELLO:
            return MsgType.HELLO, encode_hello(CAPS)
        if request.type == MsgType.READ:
            sensor = request.payload[0]
            return MsgType.READING, bytes([sensor]) + _f32(VALUES[sensor]) + (1234).to_bytes(4, "little")
        if request.type == MsgType.COMMAND:
            actuator, value = COMMAND.unpack(request.payload)
            if actuator == 1:
                return MsgType.NACK, bytes([ErrorCode.HARDWARE])
            self.commands.append((actuator, value))
            return MsgType.ACK, b""
        return MsgType.NACK, bytes([ErrorCode.BAD_TYPE])


def _f32(value: float) -> bytes:
    return struct.pack("<f", value)
