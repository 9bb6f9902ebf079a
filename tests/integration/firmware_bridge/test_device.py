"""The Python host against the compiled C simulator over a real pseudo-terminal."""

from __future__ import annotations

import struct
import time

import pytest
import serial

from firmware_bridge import Device, ErrorCode, NotAnswering, PortError, Refused
from firmware_bridge.errors import InputError
from firmware_bridge.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.link import LinkConfig
from firmware_bridge.messages import COMMAND, MsgType
from tests.waiting import wait_until

from .sim import Simulator


def test_handshake_reports_capabilities(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        caps = dev.capabilities
        assert caps.firmware == "edge-bridge-sim" and caps.version == "1.0.0"
        assert [(s.name, s.unit) for s in caps.sensors] == [
            ("temperature", "°C"),
            ("humidity", "%RH"),
            ("light", "lx"),
            ("button", ""),
        ]
        assert {a.name: a.values for a in caps.actuators} == {"led": (0, 1), "relay": (0, 1), "fan": None}
        fan = dev.actuator("fan")
        assert (fan.min, fan.max) == (0, 255)


def test_reads_are_live_and_in_range(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        for info in dev.capabilities.sensors:
            reading = dev.read(info.name)
            assert reading.sensor == info.name and reading.unit == info.unit
            assert info.min <= reading.value <= info.max
        first = dev.read("temperature")
        # Sampled now, not cached: a later read carries a later time of the device's clock.
        wait_until(lambda: dev.read("temperature").device_ms > first.device_ms, 2, what="a newer reading")


def test_command_is_acked_and_has_its_effect(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        dark = dev.read("light").value
        dev.command("led", 1)
        assert dev.read("light").value > dark + 100  # the simulated LED lights the room
        dev.command("fan", 255)
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("led", 1), ("fan", 255)]


def test_subscription_streams_at_the_period(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        with dev.stream("humidity", period_s=0.02) as stream:
            readings = [stream.get(timeout=2) for _ in range(10)]
        gaps = [b.device_ms - a.device_ms for a, b in zip(readings, readings[1:], strict=False)]
        # Sampled on the device's clock every 20 ms; generous bounds for a loaded 2-core machine.
        assert all(g > 0 for g in gaps) and 150 <= sum(gaps) <= 400, gaps
        assert dev.stats.drops == 0
        # The stream stopped (its SUBSCRIBE off was acknowledged): over five of its periods on the
        # device's clock, the only frames that arrive are the answers to our reads.
        count = dev.stats.frames_ok
        start = dev.read("light").device_ms
        reads = 1

        def five_periods_passed() -> bool:
            nonlocal reads
            reads += 1
            return dev.read("light").device_ms >= start + 100

        wait_until(five_periods_passed, 5, what="five stream periods")
        assert dev.stats.frames_ok == count + reads


def test_host_refuses_bad_values_before_the_wire(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        sent = dev.stats.frames_ok
        with pytest.raises(InputError, match="not allowed for fan: use an integer from 0 to 255"):
            dev.command("fan", 256)
        with pytest.raises(InputError, match="one of 0, 1"):
            dev.command("led", 2)
        with pytest.raises(InputError, match="unknown actuator 'heater'"):
            dev.command("heater", 1)
        with pytest.raises(InputError, match="unknown sensor 'pressure'"):
            dev.read("pressure")
        with pytest.raises(InputError, match="too short"):
            dev.subscribe("light", 0.001, print)
        assert dev.stats.frames_ok == sent  # no answers: nothing was sent
    assert sim.commands() == []


def test_device_checks_values_too(sim: Simulator) -> None:
    """A host that skips the checks (another implementation, a bug) meets the firmware's."""
    with Device.open(sim.path) as dev:
        for payload, code in [
            (COMMAND.pack(2, 256), ErrorCode.VALUE_NOT_ALLOWED),
            (COMMAND.pack(0, -1), ErrorCode.VALUE_NOT_ALLOWED),
            (COMMAND.pack(9, 1), ErrorCode.UNKNOWN_ACTUATOR),
            (b"\x02", ErrorCode.BAD_PAYLOAD),
        ]:
            answer = dev.link.request(MsgType.COMMAND, payload)
            assert (answer.type, answer.payload) == (MsgType.NACK, bytes([code]))
        assert dev.link.request(MsgType.READ, b"\x09").payload == bytes([ErrorCode.UNKNOWN_SENSOR])
        assert dev.link.request(MsgType.SUBSCRIBE, struct.pack("<BI", 0, 5)).payload == bytes([ErrorCode.BAD_PERIOD])
        assert dev.link.request(MsgType.ACK).payload == bytes([ErrorCode.BAD_TYPE])
        with pytest.raises(Refused, match="VALUE_NOT_ALLOWED"):
            dev._call(MsgType.COMMAND, COMMAND.pack(2, 999), MsgType.ACK, "COMMAND fan=999")
    assert sim.commands() == []


def raw_exchange(port: serial.Serial, data: bytes, expect: int) -> list[Frame]:
    decoder, got = FrameDecoder(), []
    port.write(data)
    deadline = time.monotonic() + 2
    while len(got) < expect and time.monotonic() < deadline:
        got += decoder.feed(port.read(port.in_waiting or 1))
    return got


def test_retransmitted_command_runs_once(sim: Simulator) -> None:
    with serial.serial_for_url(sim.path, timeout=0.05) as port:
        hello = encode_frame(Frame(MsgType.HELLO, 100))
        command = encode_frame(Frame(MsgType.COMMAND, 101, COMMAND.pack(2, 77)))
        answers = raw_exchange(port, hello + command + command + command, expect=4)
        assert [(a.type, a.seq, a.is_response) for a in answers] == [(MsgType.HELLO, 100, True)] + [
            (MsgType.ACK, 101, True)
        ] * 3
        # A new sequence number is a new command, even with the same value.
        again = encode_frame(Frame(MsgType.COMMAND, 102, COMMAND.pack(2, 77)))
        assert [a.type for a in raw_exchange(port, again, expect=1)] == [MsgType.ACK]
    assert [(c["seq"], c["value"]) for c in sim.commands()] == [(101, 77), (102, 77)]
    assert sim.stop()["duplicates"] == 2


def test_other_protocol_version_is_refused(sim: Simulator) -> None:
    with serial.serial_for_url(sim.path, timeout=0.05) as port:
        future = encode_frame(Frame(MsgType.HELLO, 5, version=2))
        [answer] = raw_exchange(port, future, expect=1)
        assert (answer.type, answer.seq, answer.payload) == (MsgType.NACK, 5, bytes([ErrorCode.UNSUPPORTED_VERSION]))


def test_resynchronises_after_garbage(sim: Simulator) -> None:
    with serial.serial_for_url(sim.path, timeout=0.05) as port:
        garbage = bytes(range(1, 256)) * 3 + b"\x07\x00\x13\x37"  # includes an overlong run
        ping = encode_frame(Frame(MsgType.PING, 9, b"still there?"))
        [answer] = raw_exchange(port, garbage + b"\x00" + ping, expect=1)
        assert (answer.type, answer.payload) == (MsgType.PONG, b"still there?")
    stats = sim.stop()
    assert stats["frames_ok"] == 1 and stats["bad_frames"] == 2


def test_ping(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        assert 0 < dev.ping(b"\x00\x01\x02" * 10) < 0.5


def test_bad_port_is_a_port_error() -> None:
    with pytest.raises(PortError, match="cannot open serial port /dev/does-not-exist"):
        Device.open("/dev/does-not-exist")
    with pytest.raises(PortError, match="cannot open serial port nosuch://x"):
        Device.open("nosuch://x")


def test_silent_port_is_not_answering() -> None:
    # loop:// echoes our own requests back: frames arrive, but never an answer.
    config = LinkConfig(timeout=0.05, retries=2)
    with pytest.raises(NotAnswering, match="did not answer after 3 attempts"):
        Device.open("loop://", config)


def test_link_counts_retries_and_failures() -> None:
    from firmware_bridge import Link

    with Link("loop://", LinkConfig(timeout=0.02, retries=4)) as link:
        with pytest.raises(NotAnswering):
            link.request(MsgType.PING, b"x")
        wait_until(lambda: link.stats.frames_ok == 5, 1, what="five intact frames")  # each attempt echoed back intact
        stats = link.stats
        assert (stats.retries, stats.failures, stats.crc_errors) == (4, 1, 0)
