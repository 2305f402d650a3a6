"""The IRC line codec: the ircdocs parser-test vectors, round trips, hostile bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.irc import protocol as p
from models.errors import ProtocolError

parser_tests = pytest.importorskip("parser_tests.data", reason="irc-parser-tests not installed")


def _atoms(msg: p.Message) -> dict:
    return {"tags": dict(msg.tags) or None, "source": msg.prefix, "verb": msg.command,
            "params": list(msg.params)}


@pytest.mark.parametrize("case", parser_tests.msg_split["tests"],
                         ids=lambda c: c["input"][:40])
def test_ircdocs_split_vectors(case):
    want = case["atoms"]
    got = _atoms(p.parse(case["input"].encode("utf-8")))
    assert got["verb"] == want["verb"].upper()
    assert got["params"] == want.get("params", [])
    assert got["source"] == want.get("source")
    assert (got["tags"] or {}) == {k: (v or "") for k, v in (want.get("tags") or {}).items()}


@pytest.mark.parametrize("case", parser_tests.msg_join["tests"], ids=lambda c: c["desc"][:40])
def test_ircdocs_join_vectors(case):
    a = case["atoms"]
    msg = p.message(a["verb"], *a.get("params", []), prefix=a.get("source"),
                    tags={k: v or "" for k, v in (a.get("tags") or {}).items()})
    line = p.format_message(msg)
    assert line.endswith(b"\r\n")
    if len(msg.tags) <= 1:  # tag order is free: only then is the exact line known
        assert line[:-2].decode() in case["matches"]
    assert _atoms(p.parse(line[:-2])) == _atoms(msg) | {"verb": a["verb"].upper()}


def test_limits_and_garbage():
    with pytest.raises(ProtocolError):
        p.parse(b"PRIVMSG #a :" + b"x" * 600)
    with pytest.raises(ProtocolError):
        p.parse(b"@" + b"a" * 9000 + b" PING x")
    for bad in (b"", b":onlyprefix", b": PING", b"12 x", b"PR!V x", b"PRIVMSG a\0b",
                b"   ", b":a :b", b"@=x PING"):
        with pytest.raises(ProtocolError):
            p.parse(bad)
    assert p.parse(b"privmsg #a :caf\xe9").params == ("#a", "café")  # Latin-1 fallback
    assert p.parse(b"@k=\xff PING x").tag("k") == "\ufffd"
    assert p.parse(b"PING x\r") == p.message("PING", "x")


def test_reader_frames_and_skips_overlong_lines():
    r = p.LineReader()
    assert r.feed(b"NICK a\r\nUSER a 0 * :A") == [p.message("NICK", "a")]
    assert r.feed(b"\n\r\n") == [p.message("USER", "a", "0", "*", "A")]
    out = r.feed(b"PRIVMSG #a :" + b"x" * 20000)
    assert [type(x) for x in out] == [ProtocolError]
    assert r.feed(b"y" * 100) == []
    assert r.feed(b"z\nPING 1\n") == [p.message("PING", "1")]  # the rest of the long line dropped
    out = r.feed(b"PRIVMSG #a :" + b"x" * 600 + b"\n")
    assert isinstance(out[0], ProtocolError) and out[0].code == "LINE_TOO_LONG"


def test_format_rules():
    assert p.format_message(p.message("PRIVMSG", "#a", "")) == b"PRIVMSG #a :\r\n"
    assert p.format_message(p.message("PRIVMSG", "#a", ":)")) == b"PRIVMSG #a ::)\r\n"
    assert p.format_message(p.message("X", tags={"a": "b c;d"})) == b"@a=b\\sc\\:d X\r\n"
    for bad in (p.message("X", "a b", "c"), p.message("X", "a\nb")):
        with pytest.raises(ValueError):
            p.format_message(bad)


def test_split_to_fit_never_cuts_a_character():
    text = "ä☕" * 300
    pieces = p.split_to_fit(text, 100)
    assert "".join(pieces) == text
    assert all(len(x.encode()) <= 100 for x in pieces)
    assert p.clean_text("a\r\nb\0c") == ["a", "bc"]


_word = st.text(st.characters(blacklist_characters=" \r\n\0:", blacklist_categories=("Cs",)),
                min_size=1, max_size=12)
_last = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)),
                max_size=40)
_tags = st.dictionaries(st.from_regex(r"[a-z][a-z0-9/.-]{0,10}", fullmatch=True),
                        st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),
                        max_size=3)


@settings(max_examples=300, deadline=None)
@given(cmd=st.from_regex(r"[A-Z]{1,8}|[0-9]{3}", fullmatch=True),
       middle=st.lists(_word, max_size=5), last=st.none() | _last,
       prefix=st.none() | _word, tags=_tags)
def test_round_trip(cmd, middle, last, prefix, tags):
    params = tuple(middle) + (() if last is None else (last,))
    msg = p.Message(cmd, params, prefix, tuple((k, v) for k, v in tags.items()))
    line = p.format_message(msg)
    assert p.parse(line.rstrip(b"\n")) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=700))
def test_arbitrary_bytes_raise_only_our_error(data):
    with contextlib.suppress(ProtocolError):
        p.parse(data)
    reader = p.LineReader()
    for item in reader.feed(data) + reader.feed(b"\n"):
        assert isinstance(item, p.Message | ProtocolError)
