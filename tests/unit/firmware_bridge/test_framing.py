import random
import struct
import zlib

from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import cobs
from firmware_bridge.framing import MAX_ENCODED, MAX_PAYLOAD, Frame, FrameDecoder, Reject, decode_frame, encode_frame

frames = st.builds(
    Frame,
    type=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=MAX_PAYLOAD),
    flags=st.integers(0, 255),
)


def test_layout_matches_protocol_md() -> None:
    wire = encode_frame(Frame(type=0x05, seq=0x1234, payload=b"\x02\x80\x00\x00\x00"))
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    raw = cobs.decode(wire[:-1])
    assert raw[:7] == bytes([1, 0x05, 0, 0x34, 0x12, 5, 0])  # version, type, flags, seq LE, len LE
    assert raw[7:12] == b"\x02\x80\x00\x00\x00"
    assert struct.unpack("<I", raw[12:])[0] == zlib.crc32(raw[:12])


@given(frames)
def test_round_trip(frame: Frame) -> None:
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]


@given(st.lists(frames, max_size=5), st.integers(1, 64))
def test_stream_split_anywhere(sent: list[Frame], chunk: int) -> None:
    wire = b"".join(encode_frame(f) for f in sent)
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(wire), chunk):
        got += decoder.feed(wire[i : i + chunk])
    assert got == sent


@given(st.binary(max_size=2000), frames)
def test_resynchronises_within_one_frame_after_any_garbage(garbage: bytes, frame: Frame) -> None:
    # Whatever came before, the first complete frame after a delimiter is accepted.
    got = FrameDecoder().feed(garbage + b"\x00" + encode_frame(frame))
    assert got[-1] == frame


@given(st.binary(max_size=3000))
def test_garbage_never_raises_and_is_counted(garbage: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(garbage + b"\x00")
    # Random bytes pass a CRC-32 with probability 2^-32: every non-empty piece is a reject.
    pieces = [p for p in garbage.split(b"\x00") if p]
    assert sum(decoder.rejects.values()) == len(pieces)


@given(frames, st.data())
def test_bit_flips_are_rejected(frame: Frame, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(frame)[:-1])
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(wire) * 8 - 1))
        wire[i // 8] ^= 1 << (i % 8)
    decoder = FrameDecoder()
    got = decoder.feed(bytes(wire) + b"\x00")
    # A flip may create a 0x00 and split the frame, but no piece may pass as a frame.
    assert got == [] or got == [frame] and bytes(wire) == encode_frame(frame)[:-1]


def test_each_reject_reason() -> None:
    good = cobs.decode(encode_frame(Frame(type=2, seq=1, payload=b"\x00"))[:-1])
    bad_len = bytearray(good[:-4])
    bad_len[5] = 9
    bad_len += struct.pack("<I", zlib.crc32(bad_len))
    bad_version = bytearray(good[:-4])
    bad_version[0] = 2
    bad_version += struct.pack("<I", zlib.crc32(bad_version))
    assert decode_frame(b"\x03\x11") is Reject.BAD_COBS
    assert decode_frame(cobs.encode(b"\x01\x02\x03")) is Reject.TOO_SHORT
    assert decode_frame(cobs.encode(good[:-1] + bytes([good[-1] ^ 1]))) is Reject.BAD_CRC
    assert decode_frame(cobs.encode(bytes(bad_len))) is Reject.BAD_LENGTH
    assert decode_frame(cobs.encode(bytes(bad_version))) is Reject.BAD_VERSION


def test_overlong_input_is_dropped_without_buffering() -> None:
    decoder = FrameDecoder()
    rng = random.Random(1)
    noise = bytes(rng.randrange(1, 256) for _ in range(MAX_ENCODED * 4))
    assert decoder.feed(noise) == []
    assert len(decoder._buf) == 0  # memory stays bounded whatever the line sends
    frame = Frame(type=8, seq=7, payload=b"x")
    assert decoder.feed(noise + b"\x00" + encode_frame(frame)) == [frame]
    assert decoder.rejects[Reject.OVERFLOW] == 1


def test_empty_frames_are_ignored() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x00\x00") == []
    assert sum(decoder.rejects.values()) == 0
