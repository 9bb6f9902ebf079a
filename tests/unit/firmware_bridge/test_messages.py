import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.messages import (
    ActuatorInfo,
    Capabilities,
    ErrorCode,
    PayloadError,
    SensorInfo,
    decode_hello,
    decode_log,
    decode_nack,
    decode_reading,
    encode_hello,
)

names = st.text(min_size=1, max_size=12)
f32 = st.floats(width=32, allow_nan=False)
i32 = st.integers(-(2**31), 2**31 - 1)
sensors = st.builds(SensorInfo, id=st.integers(0, 255), name=names, unit=st.text(max_size=4), min=f32, max=f32)
actuators = st.one_of(
    st.builds(ActuatorInfo, id=st.integers(0, 255), name=names, unit=st.text(max_size=4), min=i32, max=i32),
    st.builds(
        ActuatorInfo,
        id=st.integers(0, 255),
        name=names,
        unit=st.text(max_size=4),
        values=st.lists(i32, max_size=6).map(tuple),
    ),
)
capabilities = st.builds(
    Capabilities,
    firmware=names,
    version=names,
    max_payload=st.integers(64, 240),
    sensors=st.lists(sensors, max_size=4).map(tuple),
    actuators=st.lists(actuators, max_size=4).map(tuple),
)


@given(capabilities)
def test_hello_round_trip(caps: Capabilities) -> None:
    assert decode_hello(encode_hello(caps)) == caps


@given(st.binary(max_size=300))
def test_hello_decoder_only_raises_payload_error(data: bytes) -> None:
    try:
        decode_hello(data)
    except PayloadError:
        pass


@given(capabilities, st.data())
def test_truncated_hello_is_refused(caps: Capabilities, data: st.DataObject) -> None:
    payload = encode_hello(caps)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(PayloadError):
        decode_hello(payload[:cut])


def test_allowed_values() -> None:
    led = ActuatorInfo(0, "led", "", values=(0, 1))
    fan = ActuatorInfo(2, "fan", "pwm", min=0, max=255)
    assert led.allows(1) and not led.allows(2)
    assert fan.allows(0) and fan.allows(255) and not fan.allows(256) and not fan.allows(-1)
    assert fan.describe_allowed() == "an integer from 0 to 255"
    assert led.describe_allowed() == "one of 0, 1"


def test_small_payloads() -> None:
    assert decode_reading(struct.pack("<BfI", 3, 1.5, 99)) == (3, 1.5, 99)
    with pytest.raises(PayloadError):
        decode_reading(b"\x03")
    assert decode_nack(b"\x06") is ErrorCode.VALUE_NOT_ALLOWED
    assert decode_nack(b"\xee") == 0xEE
    assert decode_log(b"\x02hot\xff") == (2, "hot\ufffd")
    with pytest.raises(PayloadError):
        decode_nack(b"")
