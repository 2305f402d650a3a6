"""The file-transfer codecs and name sanitizing: exact bytes, round trips, hostile input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.files import wire
from client.files.names import reserve_unique, sanitize_name, unique_path
from models.errors import ProtocolError

TOKEN = bytes(range(16))

tokens = st.binary(min_size=16, max_size=16)
names = st.text(min_size=1, max_size=200).filter(lambda s: 1 <= len(s.encode()) <= 1024)
reasons = st.text(max_size=50)
controls = st.one_of(
    st.builds(wire.Offer, tokens, names, st.integers(0, wire.MAX_SIZE),
              st.integers(0, wire.MAX_SIZE), st.integers(0, 0xFFFF)),
    st.builds(wire.Accept, tokens),
    st.builds(wire.Decline, tokens, reasons),
    st.builds(wire.Cancel, tokens, reasons),
    st.builds(wire.Reverse, tokens, st.integers(1, 0xFFFF)),
)


def test_offer_bytes_exactly() -> None:
    raw = wire.encode_control(wire.Offer(TOKEN, "a.txt", 5, 7, 4000))
    assert raw == (b"F\x01" + TOKEN + (5).to_bytes(8, "big") + (7).to_bytes(8, "big")
                   + b"\x0f\xa0" + b"\x00\x05" + b"a.txt")


def test_other_controls_bytes_exactly() -> None:
    assert wire.encode_control(wire.Accept(TOKEN)) == b"F\x02" + TOKEN
    assert wire.encode_control(wire.Decline(TOKEN, "no")) == b"F\x03" + TOKEN + b"\x02no"
    assert wire.encode_control(wire.Cancel(TOKEN, "")) == b"F\x04" + TOKEN + b"\x00"
    assert wire.encode_control(wire.Reverse(TOKEN, 258)) == b"F\x05" + TOKEN + b"\x01\x02"


def test_stream_parts_exactly() -> None:
    assert wire.encode_preamble(wire.ROLE_RECEIVER, TOKEN) == b"OLCF\x01R" + TOKEN
    assert wire.decode_preamble(b"OLCF\x01S" + TOKEN) == (b"S", TOKEN)
    hello = wire.Hello(TOKEN, 9, bytes(32))
    assert wire.encode_hello(hello) == TOKEN + (9).to_bytes(8, "big") + bytes(32)
    assert wire.decode_hello(wire.encode_hello(hello)) == hello
    assert wire.decode_start(wire.encode_start(TOKEN, 3)) == (TOKEN, 3)
    assert wire.decode_end(wire.encode_end(12)) == 12


@given(controls)
def test_control_round_trip(msg) -> None:
    raw = wire.encode_control(msg)
    assert len(raw) <= wire.MAX_CONTROL and raw[:1] == b"F"
    back = wire.decode_control(raw)
    if isinstance(msg, wire.Decline | wire.Cancel):
        assert back.reason == msg.reason[:len(back.reason)]
    else:
        assert back == msg


@given(st.binary(max_size=5000))
def test_arbitrary_control_bytes_only_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        wire.decode_control(data)


@given(st.binary(max_size=40))
def test_arbitrary_stream_bytes_only_raise_protocol_error(data: bytes) -> None:
    for fn in (wire.decode_preamble, wire.decode_hello, wire.decode_start, wire.decode_end):
        with contextlib.suppress(ProtocolError):
            fn(data)


@given(st.binary(max_size=200))
def test_control_with_valid_head_and_random_tail(tail: bytes) -> None:
    for kind in range(7):
        with contextlib.suppress(ProtocolError):
            wire.decode_control(b"F" + bytes((kind,)) + TOKEN + tail)


def test_malformed_controls_are_rejected() -> None:
    good = wire.encode_control(wire.Offer(TOKEN, "a", 1, 1, 1))
    for bad in (b"", b"F", b"G\x02" + TOKEN, good[:-1], good + b"x", b"F\x02" + TOKEN + b"x",
                b"F\x05" + TOKEN + b"\x00\x00", b"F\x03" + TOKEN + b"\x05ab",
                b"F\x01" + TOKEN + bytes(20) + b"\x00\x01\xff", b"F" + b"\x02" * 5000):
        with pytest.raises(ProtocolError):
            wire.decode_control(bad)


@pytest.mark.parametrize("raw,expected", [
    ("../x", "x"),
    ("/etc/passwd", "passwd"),
    ("C:\\Windows\\x", "x"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("CON.txt", "_CON.txt"),
    ("con", "_con"),
    ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
    ("COM1 .log", "_COM1 .log"),
    ("nul", "_nul"),
    ("console.txt", "console.txt"),
    ("a.exe. . ", "a.exe"),
    ("..", "file"),
    (".", "file"),
    ("", "file"),
    ("   ", "file"),
    (".bashrc", "bashrc"),
    ("a\x00b\nc.txt", "a_b_c.txt"),
    ("x:stream", "x_stream"),
    ("what?.txt", "what_.txt"),
    ("evil\u202etxt.exe", "evil_txt.exe"),
    ("отчёт 📄.pdf", "отчёт 📄.pdf"),
])
def test_sanitize_examples(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


def test_sanitize_caps_length_and_keeps_extension() -> None:
    name = sanitize_name("я" * 500 + ".jpeg")
    assert name.endswith(".jpeg") and len(name.encode()) <= 200


@given(st.text(max_size=400))
def test_sanitized_names_are_plain_and_portable(raw: str) -> None:
    name = sanitize_name(raw)
    assert name and "/" not in name and "\\" not in name and ":" not in name
    assert name not in (".", "..") and not name.endswith((".", " ")) and not name.startswith(".")
    assert len(name.encode("utf-8")) <= 200
    assert all(ord(c) >= 32 for c in name)
    assert name.split(".")[0].upper().rstrip() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
    assert Path(name).name == name and not Path(name).is_absolute()


def test_unique_path_and_reserve(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"")
    assert unique_path(tmp_path, "a.txt") == tmp_path / "a (1).txt"
    assert unique_path(tmp_path, "b") == tmp_path / "b"
    first = reserve_unique(tmp_path, "a.txt")
    second = reserve_unique(tmp_path, "a.txt")
    assert (first.name, second.name) == ("a (1).txt", "a (2).txt")
    assert reserve_unique(tmp_path, "archive.tar.gz").name == "archive.tar.gz"
    assert reserve_unique(tmp_path, "archive.tar.gz").name == "archive.tar (1).gz"
