"""The directory codec: every message, byte-exact, and property tests."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import directory_wire as w
from models.errors import ProtocolError

KW = "AbCdEfGhIjKlMnOpQrStUv-_"

# ------------------------------------------------------------------ byte-exact examples

LINES = [
    (w.Connect("Evan"), b"CONNECT Evan\n"),
    (w.Connect("Вася", KW), f"CONNECT Вася {KW}\n".encode()),
    (w.ReferenceRequest(), b"REFERENCE?\n"),
    (w.ChannelSwitch(), b"CHANNEL_SWITCH\n"),
    (w.InfoRequest(), b"INFO?\n"),
]
REPLIES = [
    (w.Keyword(KW), f"KEYWORD {KW}\n".encode()),
    (w.Reference(()), b"REFERENCE 0\n"),
    (w.Reference((w.Entry("Evan", "192.0.2.7", 40001), w.Entry("Вася", "::1", 5))),
     "REFERENCE 2 Evan 192.0.2.7 40001 Вася ::1 5\n".encode()),
    (w.Info(10.0), b"INFO ping_interval=10\n"),
    (w.Info(2.5, "Evan"), b"INFO ping_interval=2.5 nickname=Evan\n"),
    (w.Error("NICK_TAKEN", "nickname Evan is taken"), b"ERROR NICK_TAKEN nickname Evan is taken\n"),
    (w.Error("TIMEOUT", ""), b"ERROR TIMEOUT\n"),
]
DATAGRAMS = [
    (w.Ping("kw1", "Evan"), b"kw1 9 PING Evan"),
    (w.Ping("kw1", "Evan", "0123456789abcdef"), b"kw1 26 PING Evan 0123456789abcdef"),
    (w.Quit("kw1", "Вася"), "kw1 13 QUIT Вася".encode()),
    (w.RefAdd("kw1", (w.Entry("Evan", "192.0.2.7", 40001),)),
     b"kw1 30 REF_ADD 1 Evan 192.0.2.7 40001"),
    (w.RefDel("kw1", ("Evan", "bob")), b"kw1 18 REF_DEL 2 Evan bob"),
    (w.Pong("kw1", "0000000000000000"), b"kw1 21 PONG 0000000000000000"),
    (w.Unknown("kw1"), b"kw1 7 UNKNOWN"),
]


@pytest.mark.parametrize(("msg", "line"), LINES)
def test_request_lines(msg: object, line: bytes) -> None:
    assert w.encode_line(msg) == line
    assert w.decode_request(line) == msg
    assert w.decode_request(line[:-1] + b"\r\n") == msg
    assert w.decode_request(line[:-1]) == msg


@pytest.mark.parametrize(("msg", "line"), REPLIES)
def test_reply_lines(msg: object, line: bytes) -> None:
    assert w.encode_line(msg) == line
    assert w.decode_reply(line) == msg
    assert w.decode_reply(line[:-1] + b"\r\n") == msg


@pytest.mark.parametrize(("msg", "data"), DATAGRAMS)
def test_datagrams(msg: object, data: bytes) -> None:
    assert w.encode_datagram(msg) == data
    assert w.decode_datagram(data) == msg


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"HELLO\n", "UNKNOWN_COMMAND"),
        (b"\n", "UNKNOWN_COMMAND"),
        (b"connect evan\n", "UNKNOWN_COMMAND"),
        (b"CONNECT\n", "BAD_ARGS"),
        (b"CONNECT a b c\n", "BAD_ARGS"),
        (b"CONNECT  evan\n", "BAD_ARGS"),
        (b"CONNECT evan \n", "BAD_ARGS"),
        (b"CONNECT evan bad!keyword\n", "BAD_ARGS"),
        (b"REFERENCE? x\n", "BAD_ARGS"),
        (b"CHANNEL_SWITCH now\n", "BAD_ARGS"),
        (b"INFO? 1\n", "BAD_ARGS"),
        (b"CONNECT \xff\xfe\n", "BAD_ENCODING"),
        (b"CONNECT " + b"x" * 1024 + b"\n", "LINE_TOO_LONG"),
        (b"CONNECT a\rb\n", "BAD_ARGS"),
    ],
)
def test_request_errors(line: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        w.decode_request(line)
    assert info.value.code == code


def test_connect_nickname_is_left_to_the_nickname_rules() -> None:
    # control characters in a nickname are the nickname rules' business (BAD_NICK there)
    assert w.decode_request(b"CONNECT ev\x01an\n") == w.Connect("ev\x01an")


def test_request_line_limit_is_inclusive() -> None:
    line = b"CONNECT " + b"x" * (w.MAX_REQUEST_LINE - 9) + b"\n"
    assert len(line) == w.MAX_REQUEST_LINE
    assert w.decode_request(line) == w.Connect("x" * (w.MAX_REQUEST_LINE - 9))


@pytest.mark.parametrize(
    "line",
    [b"KEYWORD\n", b"KEYWORD a b\n", b"REFERENCE\n", b"REFERENCE 1\n",
     b"REFERENCE 1 a 1.2.3.4\n", b"REFERENCE 1 a host 5\n", b"REFERENCE 1 a 1.2.3.4 0\n",
     b"REFERENCE 1 a 1.2.3.4 65536\n", b"REFERENCE 01 a 1.2.3.4 5\n", b"INFO\n",
     b"INFO nickname=x\n", b"INFO ping_interval=-1\n", b"INFO ping_interval=nan\n",
     b"INFO ping_interval=0\n", b"INFO ping_interval\n", b"ERROR\n", b"ERROR lower text\n",
     b"WHAT\n"],
)
def test_reply_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        w.decode_reply(line)


def test_info_ignores_unknown_keys() -> None:
    assert w.decode_reply(b"INFO future=1 ping_interval=3\n") == w.Info(3.0)


@pytest.mark.parametrize(
    "data",
    [b"", b"kw", b"kw 4", b"kw 4 PING", b"kw 5 PING x", b"kw 06 PING x", b"kw -6 PING x",
     b"kw 6 PING  ", b"k!w 6 PING x", b"kw 7 PING x y", b"kw 21 PING x 0123456789ABCDEF",
     b"kw 4 QUIT", b"kw 8 QUIT a b", b"kw 5 HELLO", b"kw 9 UNKNOWN x", b"kw 9 REF_DEL 1",
     b"kw 11 REF_ADD 1 a", b"kw 4 PONG", b"kw 6 PING \xff", "ключ 6 PING x".encode(),
     b"x" * 25 + b" 6 PING x", b"kw 6 PING \x00"],
)
def test_bad_datagrams(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        w.decode_datagram(data)


def test_encoders_refuse_what_must_never_be_sent() -> None:
    with pytest.raises(ValueError):
        w.encode_line(w.Connect("two words"))
    with pytest.raises(ValueError):
        w.encode_line(w.Keyword("not a keyword!"))
    with pytest.raises(ValueError):
        w.encode_line(w.Error("NICK_TAKEN", "two\nlines"))
    with pytest.raises(ValueError):
        w.encode_line(w.Info(float("inf")))
    with pytest.raises(ValueError):
        w.encode_datagram(w.Ping("kw", "x", "XYZ"))
    with pytest.raises(ValueError):
        w.encode_datagram(w.RefAdd("kw", (w.Entry("a", "nohost", 1),)))
    with pytest.raises(ValueError):
        w.encode_line(w.Ping("kw", "x"))  # type: ignore[arg-type]


# ------------------------------------------------------------------ packing


def _entries(n: int) -> list[w.Entry]:
    return [w.Entry(f"ник{i:05d}", f"10.0.{i // 256 % 256}.{i % 256}", 1024 + i) for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 7, 50, 1000])
def test_pack_ref_add_splits_under_limit(n: int) -> None:
    entries = _entries(n)
    datagrams = w.pack_ref_add(KW, entries)
    got: list[w.Entry] = []
    for data in datagrams:
        assert len(data) <= 1200
        msg = w.decode_datagram(data)
        assert isinstance(msg, w.RefAdd) and msg.keyword == KW
        got.extend(msg.entries)
    assert got == entries
    if n == 50:
        assert len(datagrams) <= 3


def test_pack_ref_del_splits_under_limit() -> None:
    nicks = [f"nick{i}" for i in range(1000)]
    datagrams = w.pack_ref_del("k", nicks, limit=300)
    got: list[str] = []
    for data in datagrams:
        assert len(data) <= 300
        msg = w.decode_datagram(data)
        assert isinstance(msg, w.RefDel)
        got.extend(msg.nicknames)
    assert got == nicks
    assert w.pack_ref_del("k", []) == []


def test_pack_entry_too_large_for_limit() -> None:
    with pytest.raises(ValueError):
        w.pack_ref_add(KW, _entries(1), limit=50)


# ------------------------------------------------------------------ digest


def test_digest_is_xor_of_entry_hashes() -> None:
    a, b = w.Entry("Evan", "127.0.0.1", 5000), w.Entry("Вася", "127.0.0.1", 5001)
    assert w.roster_digest([]) == w.EMPTY_DIGEST == "0" * 16
    assert w.roster_digest([a, b]) == w.roster_digest([b, a])
    assert w.roster_digest([a, b]) == w.format_digest(w.entry_hash(a) ^ w.entry_hash(b))
    assert w.roster_digest([a]) != w.roster_digest([w.Entry("Evan", "127.0.0.1", 5002)])
    assert w.is_digest(w.roster_digest([a]))


def test_digest_pinned_value() -> None:
    # pins the exact hash so client and server implementations can be checked against it
    import hashlib

    e = w.Entry("Evan", "192.0.2.7", 40001)
    want = hashlib.blake2b(b"Evan 192.0.2.7 40001", digest_size=8).hexdigest()
    assert w.roster_digest([e]) == want


# ------------------------------------------------------------------ properties

nick_st = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")),
    min_size=1, max_size=24,
).filter(lambda s: not any(c.isspace() for c in s) and s.isprintable())
kw_st = st.from_regex(r"\A[A-Za-z0-9_-]{1,24}\Z")
digest_st = st.from_regex(r"\A[0-9a-f]{16}\Z")
host_st = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
entry_st = st.builds(w.Entry, nick_st, host_st, st.integers(1, 65535))
entries_st = st.lists(entry_st, max_size=8).map(tuple)
interval_st = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)

requests_st = st.one_of(
    st.builds(w.Connect, nick_st, st.none() | kw_st),
    st.just(w.ReferenceRequest()), st.just(w.ChannelSwitch()), st.just(w.InfoRequest()),
)
replies_st = st.one_of(
    st.builds(w.Keyword, kw_st),
    st.builds(w.Reference, entries_st),
    st.builds(w.Info, interval_st, st.none() | nick_st),
    st.builds(w.Error, st.from_regex(r"\A[A-Z][A-Z_]{0,20}\Z"),
              st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                            blacklist_categories=("Cs",)), max_size=40)),
)
datagrams_st = st.one_of(
    st.builds(w.Ping, kw_st, nick_st, st.none() | digest_st),
    st.builds(w.Quit, kw_st, nick_st),
    st.builds(w.RefAdd, kw_st, entries_st),
    st.builds(w.RefDel, kw_st, st.lists(nick_st, max_size=8).map(tuple)),
    st.builds(w.Pong, kw_st, digest_st),
    st.builds(w.Unknown, kw_st),
)


@given(requests_st)
def test_request_round_trip(msg: object) -> None:
    line = w.encode_line(msg)
    if len(line) <= w.MAX_REQUEST_LINE:
        assert w.decode_request(line) == msg


@given(replies_st)
def test_reply_round_trip(msg: w.Reply) -> None:
    assert w.decode_reply(w.encode_line(msg)) == msg


@given(datagrams_st)
def test_datagram_round_trip(msg: object) -> None:
    assert w.decode_datagram(w.encode_datagram(msg)) == msg


@given(kw_st, st.lists(entry_st, max_size=60), st.integers(200, 1500))
def test_pack_ref_add_round_trip(kw: str, entries: list[w.Entry], limit: int) -> None:
    got: list[w.Entry] = []
    for data in w.pack_ref_add(kw, entries, limit):
        assert len(data) <= limit
        msg = w.decode_datagram(data)
        assert isinstance(msg, w.RefAdd)
        got.extend(msg.entries)
    assert got == entries


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_protocol_error(data: bytes) -> None:
    for decode in (w.decode_request, w.decode_reply, w.decode_datagram):
        with contextlib.suppress(ProtocolError):
            decode(data)


@given(st.text(max_size=200))
def test_arbitrary_text_only_protocol_error(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    for decode in (w.decode_request, w.decode_reply, w.decode_datagram):
        with contextlib.suppress(ProtocolError):
            decode(data)


@given(kw_st, st.sampled_from(["PING", "QUIT", "REF_ADD", "REF_DEL", "PONG", "UNKNOWN"]),
       st.text(max_size=80))
def test_well_framed_junk_only_protocol_error(kw: str, command: str, rest: str) -> None:
    body = f"{command} {rest}".encode("utf-8", "surrogatepass")
    with contextlib.suppress(ProtocolError):
        w.decode_datagram(w.frame(kw, body))
