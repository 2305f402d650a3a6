"""Chat control messages (client/chat/wire.py) and channel names (client/chat/names.py)."""

from __future__ import annotations

import contextlib

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.chat import names, wire
from models.errors import ProtocolError

KEY = nacl.signing.SigningKey(b"\x01" * 32)
OTHER = nacl.signing.SigningKey(b"\x02" * 32)
MID = bytes(range(16))


def line(text: str = "hi", target: str = "#games", kind: wire.Kind = wire.Kind.MESSAGE,
         author: str = "alice", key: nacl.signing.SigningKey = KEY, clock: int = 3
         ) -> wire.SignedLine:
    return wire.sign_line(key, author=author, target=target, kind=kind, text=text,
                          ts_ms=1_700_000_000_000, clock=clock, msg_id=MID)


# --- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [("#Games", "#games"), ("#ＧＡＭＥＳ", "#games"),
                                      ("#Вася", "#вася")])
def test_channel_names_compare_like_nicknames(a: str, b: str) -> None:
    assert names.same_channel(a, b)
    assert names.channel_key(a) == names.channel_key(b)


def test_channel_display_form() -> None:
    assert names.display_form("#ＧＡＭＥＳ") == "#GAMES"
    assert names.normalize("#Games") == ("#Games", "#games")
    assert names.display_form("#" + "x" * 32) == "#" + "x" * 32


@pytest.mark.parametrize(("raw", "words"), [
    ("games", "channel names start with #"),
    ("#", "at least one character"),
    ("#a b", "spaces"),
    ("#a,b", "commas"),
    ("#a\x00b", "U+0000"),
    ("#a\u200bb", "U+200B"),
    ("#" + "x" * 33, "at most 32"),
    ("#" + "é" * 33, "at most 32"),
])
def test_bad_channel_names(raw: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        names.normalize(raw)
    assert info.value.code == "BAD_CHANNEL"
    assert words in info.value.text
    assert not names.is_channel(raw)


@given(st.text(max_size=80))
def test_any_text_is_a_channel_or_a_protocol_error(raw: str) -> None:
    try:
        display, key = names.normalize(raw)
    except ProtocolError:
        return
    assert names.normalize(display)[1] == key


# --- signed lines ----------------------------------------------------------------------------

def test_signed_line_verifies_only_under_the_authors_key() -> None:
    good = line()
    assert wire.verify_line(good, bytes(KEY.verify_key)) is wire.Verdict.OK
    assert wire.verify_line(good, bytes(OTHER.verify_key)) is wire.Verdict.WRONG_KEY
    assert wire.verify_line(good, None) is wire.Verdict.UNKNOWN_KEY


@pytest.mark.parametrize("field", ["author", "target", "msg_id", "ts_ms", "clock", "kind",
                                   "text"])
def test_altered_line_fails(field: str) -> None:
    import dataclasses
    good = line()
    changed = {"author": "mallory", "target": "#other", "msg_id": b"\xff" * 16,
               "ts_ms": 1, "clock": 4, "kind": wire.Kind.ACTION, "text": "bye"}[field]
    bad = dataclasses.replace(good, **{field: changed})
    assert wire.verify_line(bad, bytes(KEY.verify_key)) is wire.Verdict.BAD_SIGNATURE


def test_forged_author_with_own_key_is_wrong_key() -> None:
    forged = line(author="alice", key=OTHER)
    assert wire.verify_line(forged, bytes(KEY.verify_key)) is wire.Verdict.WRONG_KEY


def test_line_bytes_exact() -> None:
    payload = wire.encode(wire.Line(line()))
    assert payload.hex(" ").startswith(
        "43 07 00 92 05 61 6c 69 63 65 8a 88 e3 dd 74 09 f1 95 fd 52 db 2d 3c ba 5d 72 ca 67 09 bf "
        "1d 94 12 1b f3 74 88 01 b4 0f 6f 5c 06 23 67 61 6d 65 73 00 01 02 03 04 05 06 07 08 09 "
        "0a 0b 0c 0d 0e 0f 00 00 01 8b cf e5 68 00 00 00 00 00 00 00 00 03 01 00 02 68 69")
    assert len(payload) == 150


@pytest.mark.parametrize(("msg", "hexed"), [
    (wire.Join("#games"), "43 01 06 23 67 61 6d 65 73"),
    (wire.Part("#games", "bye"), "43 02 06 23 67 61 6d 65 73 03 62 79 65"),
    (wire.Away(True, "lunch"), "43 05 01 05 6c 75 6e 63 68"),
    (wire.Away(False), "43 05 00 00"),
    (wire.Rename("alicia"), "43 06 06 61 6c 69 63 69 61"),
    (wire.Receipt((MID,)), "43 08 01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"),
    (wire.BackfillRequest("#games", 1_700_000_000_000, 200),
     "43 09 06 23 67 61 6d 65 73 00 00 01 8b cf e5 68 00 00 c8"),
    (wire.State(False, "", ("#room",), ()), "43 03 00 00 01 05 23 72 6f 6f 6d 00"),
    (wire.AutoReply(MID, "lunch"),
     "43 0b 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 05 6c 75 6e 63 68"),
])
def test_exact_bytes(msg: wire.Message, hexed: str) -> None:
    assert wire.encode(msg).hex(" ") == hexed
    assert wire.decode(bytes.fromhex(hexed)) == msg


@pytest.mark.parametrize("msg", [
    wire.Join("games"), wire.Part("#a", "x" * 201), wire.Away(True, "x" * 201),
    wire.Rename("bad nick"), wire.Receipt(()), wire.BackfillRequest("#a", 0, 0),
    wire.BackfillRequest("#a", 0, 201), wire.State(False, "", ("#a",) * 33),
    wire.Topic(line(kind=wire.Kind.MESSAGE)),
])
def test_never_sent(msg: wire.Message) -> None:
    with pytest.raises((ValueError, ProtocolError)):
        wire.encode(msg)


def test_sign_line_refuses_bad_fields() -> None:
    with pytest.raises(ValueError):
        line(text="")
    with pytest.raises(ValueError):
        line(text="x" * 301, kind=wire.Kind.TOPIC)
    with pytest.raises(ValueError):
        line(text="a\nb", kind=wire.Kind.TOPIC)
    with pytest.raises(ValueError):
        line(target="bad target")
    with pytest.raises(ValueError):
        line(text="x" * (wire.MAX_TEXT + 1))


def test_topic_as_line_and_line_as_topic_rejected() -> None:
    topic = line(text="t", kind=wire.Kind.TOPIC)
    raw = bytearray(wire.encode(wire.Topic(topic)))
    raw[1] = wire.LINE
    with pytest.raises(ProtocolError):
        wire.decode(bytes(raw))


# --- properties ------------------------------------------------------------------------------

nicks = st.sampled_from(["alice", "Bob", "вася", "Ｅｖａｎ", "x" * 24])
chans = st.sampled_from(["#room", "#Games", "#вася", "#" + "z" * 32, "#a#b"])
texts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60)
shorts = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


@st.composite
def signed(draw: st.DrawFn, kind: wire.Kind | None = None) -> wire.SignedLine:
    k = kind or draw(st.sampled_from([wire.Kind.MESSAGE, wire.Kind.ACTION]))
    target = draw(chans) if k == wire.Kind.TOPIC else draw(st.one_of(chans, nicks))
    return wire.sign_line(KEY, author=draw(nicks), target=target, kind=k, text=draw(texts),
                          ts_ms=draw(st.integers(0, 2**64 - 1)),
                          clock=draw(st.integers(0, 2**64 - 1)),
                          msg_id=draw(st.binary(min_size=16, max_size=16)))


messages = st.one_of(
    st.builds(wire.Join, chans),
    st.builds(wire.Part, chans, shorts),
    st.builds(wire.State, st.booleans(), shorts, st.lists(chans, max_size=5).map(tuple),
              st.lists(signed(wire.Kind.TOPIC), max_size=3).map(tuple)),
    st.builds(wire.Topic, signed(wire.Kind.TOPIC)),
    st.builds(wire.Away, st.booleans(), shorts),
    st.builds(wire.Rename, nicks),
    st.builds(wire.Line, signed()),
    st.builds(wire.Receipt, st.lists(st.binary(min_size=16, max_size=16), min_size=1,
                                     max_size=64).map(tuple)),
    st.builds(wire.BackfillRequest, chans, st.integers(0, 2**64 - 1), st.integers(1, 200)),
    st.builds(wire.Backfill, chans, st.booleans(), st.lists(signed(), max_size=4).map(tuple)),
    st.builds(wire.AutoReply, st.binary(min_size=16, max_size=16), shorts),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(msg: wire.Message) -> None:
    assert wire.decode(wire.encode(msg)) == msg


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_protocol_error(data: bytes) -> None:
    for payload in (data, b"C" + data, b"C" + bytes((len(data) % 12,)) + data):
        with contextlib.suppress(ProtocolError):
            wire.decode(payload)
        with contextlib.suppress(ProtocolError):
            wire.decode_line(payload)


@settings(max_examples=200, deadline=None)
@given(messages, st.data())
def test_mutated_messages_only_protocol_error(msg: wire.Message, data: st.DataObject) -> None:
    raw = bytearray(wire.encode(msg))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for payload in (bytes(raw), bytes(raw[:cut])):
        try:
            decoded = wire.decode(payload)
        except ProtocolError:
            continue
        if isinstance(decoded, wire.Line):
            wire.verify_line(decoded.line, bytes(KEY.verify_key))


def test_oversized_payload() -> None:
    with pytest.raises(ProtocolError):
        wire.decode(b"C\x01" + b"x" * wire.MAX_PAYLOAD)


def test_docs_examples_are_byte_exact() -> None:
    """Every example in docs/PROTOCOL.md section 10 decodes and re-encodes to the same bytes."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text("utf-8")
    section = doc.split("\n## 10. ")[1]
    block = section.split("### Chat examples")[1].split("```")[1]
    examples: list[bytes] = []
    for row in block.splitlines():
        if row.startswith("       "):
            examples[-1] += bytes.fromhex(row)
        elif row.strip():
            examples.append(b"")
    assert len(examples) == 12
    for raw in examples:
        msg = wire.decode(raw)
        assert wire.encode(msg) == raw
        if isinstance(msg, wire.Line | wire.Topic):
            assert wire.verify_line(msg.line, bytes(KEY.verify_key)) is wire.Verdict.OK
