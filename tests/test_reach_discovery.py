"""LAN discovery, pure parts: the announcement codec, the announce schedule, the cache
(client/reach/discovery.py, client/reach/lancache.py). Fake time: 0, 1, 2 ..."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.reach.discovery import MAX_SIZE, Announcement, Announcer, decode
from client.reach.lancache import (
    CacheLimits,
    Clash,
    DiscoveryCache,
    LanPeer,
    LanServer,
    PeerGone,
    PeerSeen,
    ServerGone,
    ServerSeen,
)
from models.errors import ProtocolError

KEY_A, KEY_B, KEY_ME = b"A" * 32, b"B" * 32, b"M" * 32
ME = b"me-inst!"


def client(nick: str = "alice", key: bytes = KEY_A, port: int = 7700, inst: bytes = b"inst0001",
           addrs: tuple[str, ...] = (), query: bool = False) -> bytes:
    return Announcement(False, port, inst, nick, key, addrs, query).encode()


def test_client_announcement_exact_bytes_and_round_trip() -> None:
    ann = Announcement(False, 7700, b"\x01" * 8, "Вася", KEY_A, ("192.168.1.20", "fe80::1"))
    data = ann.encode()
    assert data == (b"OLCa\x01\x00\x1e\x14" + b"\x01" * 8 + KEY_A + b"\x08" + "Вася".encode()
                    + b"\x02" + b"\x04\xc0\xa8\x01\x14" + b"\x06\xfe\x80" + b"\x00" * 13 + b"\x01")
    assert decode(data) == ann


def test_server_announcement_has_no_key() -> None:
    ann = Announcement(True, 7700, b"\x02" * 8, "club", None, (), query=True)
    data = ann.encode()
    assert data[5] == 0x03 and len(data) == 16 + 1 + 4 + 1
    assert decode(data) == ann


def test_nickname_is_normalised_to_display_form() -> None:
    assert decode(client("Ｅｖａｎ")).name == "Evan"


@pytest.mark.parametrize("bad", [
    b"", b"OLCa", b"XXXX" + client()[4:], client()[:4] + b"\x02" + client()[5:],
    client()[:5] + b"\x04" + client()[6:], client()[:6] + b"\x00\x00" + client()[8:],
    client() + b"\x00", client()[:-1],
])
def test_malformed_announcements_are_refused(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(bad)


@pytest.mark.parametrize("addr", ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "::1"])
def test_addresses_that_cannot_be_lan_addresses_are_refused(addr: str) -> None:
    with pytest.raises(ProtocolError):
        client(addrs=(addr,))


def test_bad_nickname_refused() -> None:
    data = bytearray(client("bob"))
    data[16 + 32 + 1:16 + 32 + 4] = b"b b"
    with pytest.raises(ProtocolError):
        decode(bytes(data))


announcements = st.builds(
    Announcement,
    server=st.just(False), port=st.integers(1, 65535), instance=st.binary(min_size=8, max_size=8),
    name=st.sampled_from(["alice", "Вася", "x" * 24, "Evan"]), key=st.binary(min_size=32,
                                                                           max_size=32),
    addrs=st.lists(st.ip_addresses().filter(
        lambda ip: not (ip.is_unspecified or ip.is_loopback or ip.is_multicast
                        or str(ip) == "255.255.255.255")).map(str), max_size=8).map(tuple),
    query=st.booleans())


@given(announcements)
def test_round_trip(ann: Announcement) -> None:
    data = ann.encode()
    assert len(data) <= MAX_SIZE
    assert decode(data) == ann


@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@given(announcements, st.integers(0, 300), st.integers(0, 255))
def test_one_flipped_byte_only_protocol_error(ann: Announcement, pos: int, value: int) -> None:
    data = bytearray(ann.encode())
    data[pos % len(data)] = value
    with contextlib.suppress(ProtocolError):
        decode(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_cache_fed_arbitrary_bytes_only_protocol_error(datagrams: list[bytes]) -> None:
    cache = DiscoveryCache(KEY_ME, ME)
    for i, data in enumerate(datagrams):
        with contextlib.suppress(ProtocolError):
            cache.feed(data, ("10.0.0.9", 7701), float(i))


# ---------------------------------------------------------------------- announcer


def test_announcer_asks_twice_at_start_then_beats_every_interval() -> None:
    a = Announcer(start=0, interval=5, answer_gap=0.5)
    assert a.poll(0) is True
    assert a.poll(0.25) is None and a.next_deadline() == 0.5
    assert a.poll(0.5) is True
    assert a.next_deadline() == 5.5
    assert a.poll(5.5) is False
    assert a.next_deadline() == 10.5


def test_announcer_answers_queries_at_most_once_per_gap() -> None:
    a = Announcer(start=0, interval=5, answer_gap=0.5)
    a.poll(0)
    a.poll(0.5)
    a.query_heard(1)
    assert a.poll(1) is False
    for t in (1.1, 1.2, 1.3):
        a.query_heard(t)
    assert a.poll(1.3) is None and a.next_deadline() == 1.5
    assert a.poll(1.5) is False
    assert a.next_deadline() == 6.5


# ---------------------------------------------------------------------- cache


def test_peer_seen_refreshed_changed_and_forgotten() -> None:
    c = DiscoveryCache(KEY_ME, ME, CacheLimits(ttl=3))
    heard = c.feed(client(addrs=("192.168.1.5",), query=True), ("10.0.0.5", 7701), 0)
    peer = LanPeer(KEY_A, "alice", 7700, (("10.0.0.5", 7700), ("192.168.1.5", 7700)),
                   b"inst0001", 0)
    assert heard.events == [PeerSeen(peer, new=True)] and heard.query
    assert c.feed(client(), ("10.0.0.5", 7701), 1).events == [
        PeerSeen(LanPeer(KEY_A, "alice", 7700, (("10.0.0.5", 7700),), b"inst0001", 1), new=False)]
    assert c.feed(client(), ("10.0.0.5", 7701), 2).events == []   # same: silent refresh
    assert c.next_deadline() == 5
    assert c.expire(4.5) == []
    assert c.expire(5) == [PeerGone(KEY_A, "alice", "10.0.0.5")]
    assert c.peers() == [] and c.next_deadline() is None


def test_servers_are_listed_by_source_ip_and_port() -> None:
    c = DiscoveryCache(KEY_ME, ME, CacheLimits(ttl=3))
    data = Announcement(True, 7700, b"srv00001", "club").encode()
    assert c.feed(data, ("10.0.0.1", 7701), 0).events == [
        ServerSeen(LanServer(("10.0.0.1", 7700), "club", 0))]
    assert c.servers() == [LanServer(("10.0.0.1", 7700), "club", 0)]
    assert c.expire(3) == [ServerGone(("10.0.0.1", 7700))]


def test_own_announcements_are_ignored() -> None:
    c = DiscoveryCache(KEY_ME, ME)
    assert c.feed(client(key=KEY_ME, inst=b"otherhst"), ("10.0.0.5", 7701), 0).events == []
    assert c.feed(client(inst=ME), ("10.0.0.5", 7701), 0).events == []
    assert c.peers() == []


def test_same_nickname_two_keys_is_a_clash_never_merged() -> None:
    c = DiscoveryCache(KEY_ME, ME, own_nickname="me")
    c.feed(client("alice", KEY_A), ("10.0.0.5", 7701), 0)
    heard = c.feed(client("ALICE", KEY_B, inst=b"inst0002"), ("10.0.0.6", 7701), 0)
    assert heard.events[1] == Clash("ALICE", frozenset({KEY_A, KEY_B}))
    assert {p.key for p in c.peers()} == {KEY_A, KEY_B}
    assert c.clashes() == {"alice": frozenset({KEY_A, KEY_B})}
    heard = c.feed(client("Me", KEY_B, inst=b"inst0002"), ("10.0.0.6", 7701), 1)
    assert Clash("Me", frozenset({KEY_B, KEY_ME})) in heard.events   # someone uses our name


def test_a_key_heard_from_another_ip_is_another_entry_never_a_replacement() -> None:
    c = DiscoveryCache(KEY_ME, ME)
    c.feed(client("bob", KEY_B), ("10.0.0.7", 7701), 0)
    heard = c.feed(client("bob", KEY_B, port=9), ("10.0.0.66", 7701), 0)  # keys are public
    assert heard.events[0].new and not [e for e in heard.events if isinstance(e, Clash)]
    assert sorted(p.addrs[0] for p in c.peers()) == [("10.0.0.66", 9), ("10.0.0.7", 7700)]


def test_flood_from_one_source_is_rate_limited() -> None:
    c = DiscoveryCache(KEY_ME, ME, CacheLimits(rate=1, burst=3))
    keys = [bytes([i]) * 32 for i in range(10)]
    for k in keys:
        c.feed(client(f"n{k[0]}", k, inst=k[:8]), ("10.0.0.66", 7701), 0)
    assert len(c.peers()) == 3 and c.stats.rate_limited == 7
    c.feed(client("late", b"L" * 32), ("10.0.0.66", 7701), 1)
    assert len(c.peers()) == 4
    # another source is not affected
    c.feed(client("bob", KEY_B), ("10.0.0.7", 7701), 1)
    assert any(p.nickname == "bob" for p in c.peers())


def test_entries_per_ip_and_in_all_are_bounded() -> None:
    c = DiscoveryCache(KEY_ME, ME, CacheLimits(rate=1000, burst=1000, per_ip_entries=2,
                                                max_peers=3))
    for i in range(5):
        c.feed(client(f"n{i}", bytes([i]) * 32), ("10.0.0.66", 7701), 0)
    assert len(c.peers()) == 2
    for i in range(5, 9):
        c.feed(client(f"n{i}", bytes([i]) * 32), (f"10.0.1.{i}", 7701), 0)
    assert len(c.peers()) == 3 and c.stats.table_full == 6
