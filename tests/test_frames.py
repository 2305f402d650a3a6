"""The reliable layer's frame codec (models/frames.py): exact bytes, round trips, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import frames
from models.errors import ProtocolError
from models.frames import Ack, Data, Skip
from models.peer_wire import MAX_FRAME

U64 = st.integers(0, 2**64 - 1)


def test_layout_constants():
    assert frames.DATA_HEADER_LEN == 26
    assert frames.MAX_CHUNK == MAX_FRAME - 26 == 1139
    # 64 KiB needs 58 fragments, well inside the one-byte count
    assert -(-64 * 1024 // frames.MAX_CHUNK) == 58 <= frames.MAX_FRAGMENTS


def test_data_exact_bytes():
    d = Data(epoch=0x0102030405060708, seq=5, lag=2, kind=frames.KIND_ROOM, msg_id=7,
             index=0, count=1, chunk=b"hi")
    expected = bytes.fromhex(
        "01" "0102030405060708" "0000000000000005" "0002" "00" "00000007" "00" "01" "6869")
    assert frames.encode(d) == expected
    assert frames.decode(expected) == d
    assert d.base == 3


def test_ack_exact_bytes():
    a = Ack(epoch=0x0102030405060708, cum=10, ranges=((12, 14), (20, 21)))
    expected = bytes.fromhex(
        "02" "0102030405060708" "000000000000000a" "02" "0002" "0002" "000a" "0001")
    assert frames.encode(a) == expected
    assert frames.decode(expected) == a


def test_skip_exact_bytes():
    s = Skip(epoch=1, base=0x100)
    expected = bytes.fromhex("03" "0000000000000001" "0000000000000100")
    assert frames.encode(s) == expected
    assert frames.decode(expected) == s


def test_data_frame_from_prebuilt_tail_matches_encode():
    tail = frames.data_tail(frames.KIND_PRIVATE, 99, 2, 3, b"abc")
    d = Data(epoch=42, seq=1000, lag=7, kind=frames.KIND_PRIVATE, msg_id=99, index=2, count=3,
             chunk=b"abc")
    assert frames.data_frame(42, 1000, 7, tail) == frames.encode(d)


def test_largest_data_frame_fits():
    d = Data(1, 1, 0, 2, 1, 57, 58, b"z" * frames.MAX_CHUNK)
    assert len(frames.encode(d)) == MAX_FRAME
    assert frames.decode(frames.encode(d)) == d


@pytest.mark.parametrize("data,code", [
    (b"", "SHORT"),
    (b"\x09", "BAD_FRAME_TYPE"),
    (b"\x01" + bytes(10), "SHORT"),
    (b"\x02" + bytes(10), "SHORT"),
    (b"\x03" + bytes(10), "BAD_LENGTH"),
    (b"\x01" + bytes(MAX_FRAME), "TOO_LONG"),
    # lag 1 > seq 0
    (bytes.fromhex("01" + "00" * 8 + "00" * 8 + "0001" + "00" + "00000001" + "0001"), "BAD_LAG"),
    # kind 3
    (bytes.fromhex("01" + "00" * 8 + "00" * 8 + "0000" + "03" + "00000001" + "0001"), "BAD_KIND"),
    # index 1 of 1, and count 0
    (bytes.fromhex("01" + "00" * 8 + "00" * 8 + "0000" + "00" + "00000001" + "0101"),
     "BAD_FRAGMENT"),
    (bytes.fromhex("01" + "00" * 8 + "00" * 8 + "0000" + "00" + "00000001" + "0000"),
     "BAD_FRAGMENT"),
    # ACK claiming 1 range but carrying none; claiming too many
    (bytes.fromhex("02" + "00" * 8 + "00" * 8 + "01"), "BAD_LENGTH"),
    (bytes.fromhex("02" + "00" * 8 + "00" * 8 + "21") + bytes(33 * 4), "TOO_MANY_RANGES"),
    # ranges: offset 0, length 0, overlapping, past 2**64
    (bytes.fromhex("02" + "00" * 8 + "00" * 8 + "01" + "00000001"), "BAD_RANGE"),
    (bytes.fromhex("02" + "00" * 8 + "00" * 8 + "01" + "00010000"), "BAD_RANGE"),
    (bytes.fromhex("02" + "00" * 8 + "00" * 8 + "02" + "00010002" + "00020001"), "BAD_RANGE"),
    (bytes.fromhex("02" + "00" * 8 + "ff" * 8 + "01" + "00010001"), "BAD_RANGE"),
])
def test_malformed_frames_are_refused(data, code):
    with pytest.raises(ProtocolError) as info:
        frames.decode(data)
    assert info.value.code == code


def test_encoder_refuses_nonsense():
    with pytest.raises(ValueError):
        frames.data_tail(7, 1, 0, 1, b"")
    with pytest.raises(ValueError):
        frames.data_tail(0, 1, 1, 1, b"")
    with pytest.raises(ValueError):
        frames.data_tail(0, 1, 0, 1, b"x" * (frames.MAX_CHUNK + 1))
    with pytest.raises(ValueError):
        frames.encode_ack(1, 5, [(5, 6)])  # a range must start above cum
    with pytest.raises(ValueError):
        frames.encode_ack(1, 5, [(7, 9), (9, 10)])  # adjacent ranges must be merged


data_frames = st.builds(
    lambda epoch, seq, lag, kind, msg_id, count, index, chunk: Data(
        epoch, seq, min(lag, seq), kind, msg_id, index % count, count, chunk),
    U64, U64, st.integers(0, 0xFFFF), st.sampled_from(sorted(frames.KINDS)),
    st.integers(0, 2**32 - 1), st.integers(1, 255), st.integers(0, 254),
    st.binary(max_size=frames.MAX_CHUNK))


@st.composite
def ack_frames(draw):
    cum = draw(st.integers(0, 2**63))
    ranges = []
    prev = cum
    for _ in range(draw(st.integers(0, frames.MAX_RANGES))):
        start = prev + draw(st.integers(1, 500))
        end = start + draw(st.integers(1, 500))
        if start - cum > 0xFFFF:
            break
        ranges.append((start, end))
        prev = end
    return Ack(draw(U64), cum, tuple(ranges))


@given(st.one_of(data_frames, ack_frames(), st.builds(Skip, U64, U64)))
def test_round_trip(frame):
    assert frames.decode(frames.encode(frame)) == frame


@given(st.binary(max_size=MAX_FRAME + 10))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    try:
        frame = frames.decode(data)
    except ProtocolError:
        return
    assert frames.encode(frame) == data  # whatever parses is canonical


@given(st.sampled_from([b"\x01", b"\x02", b"\x03"]), st.binary(max_size=200))
def test_typed_garbage_raises_only_protocol_error(first, rest):
    try:
        frame = frames.decode(first + rest)
    except ProtocolError:
        return
    assert frames.encode(frame) == first + rest
