"""Liveness, squatting, repair after lost datagrams, reclaim, UNKNOWN, coalescing."""

from __future__ import annotations

import socket
import time

import pytest

from models import directory_wire as wire
from tests.conftest import TcpSession, wait_until


def test_silent_client_is_removed_after_timeout(server, joined) -> None:
    a = joined(server, "keeper")
    b = joined(server, "silent")
    a.recv_until(lambda m: isinstance(m, wire.RefAdd))
    start = time.monotonic()
    got = None
    while got is None and time.monotonic() - start < 4:
        a.ping()
        got = a.recv_until(lambda m: isinstance(m, wire.RefDel), timeout=0.3)
    assert got == wire.RefDel(a.keyword, ("silent",))
    elapsed = time.monotonic() - start
    assert 1.2 < elapsed < 2.5  # 1.5 x ping_interval, never 2x (+ one tick)
    assert server.wait_for_log(r"leave silent \(timeout\)")
    # the silent client now gets UNKNOWN back for its PINGs
    b.ping(wire.EMPTY_DIGEST)
    assert b.recv_until(lambda m: isinstance(m, wire.Unknown)) == wire.Unknown(b.keyword)


def test_pinging_client_stays(server, joined) -> None:
    a = joined(server, "steady")
    watcher = joined(server, "watcher")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        a.ping()
        watcher.ping()
        time.sleep(0.3)
    assert not any(isinstance(m, wire.RefDel) for m in watcher.drain())
    assert "steady" in watcher.roster


def test_squatter_frees_the_nickname(server, dir_client) -> None:
    squatter = dir_client(server, "squat")
    assert isinstance(squatter.register(), wire.Keyword)
    tcp = TcpSession(server.address)
    assert tcp.request(wire.Connect("SQUAT")).code == "NICK_TAKEN"
    assert server.wait_for_log(r"freed squat \(no PING\)", timeout=3)
    assert isinstance(tcp.request(wire.Connect("SQUAT")), wire.Keyword)
    tcp.close()


def test_reclaim_after_crash_without_waiting(server, joined, dir_client) -> None:
    watcher = joined(server, "watcher")
    old = joined(server, "phoenix")
    watcher.recv_until(lambda m: isinstance(m, wire.RefAdd))
    # the process "crashes" and comes back at once on a new socket, proving its keyword
    again = dir_client(server, "Phoenix")
    reply = again.register(keyword=old.keyword)
    assert reply == wire.Keyword(old.keyword)
    assert set(again.roster) == {"watcher"}
    again.ping(wire.EMPTY_DIGEST)
    msg = watcher.recv_until(lambda m: isinstance(m, wire.RefAdd))
    assert msg == wire.RefAdd(watcher.keyword, (wire.Entry("phoenix", "127.0.0.1",
                                                           again.udp_port),))
    assert server.wait_for_log(r"moved phoenix")
    # the wrong keyword does not reclaim
    thief = dir_client(server, "phoenix")
    assert thief.register(keyword="A" * 24).code == "NICK_TAKEN"


def test_resync_after_dropped_ref_add(server, joined) -> None:
    a = joined(server, "a")
    joined(server, "b")
    lost = a.udp.recvfrom(65536)  # the REF_ADD for b arrives ... and is "lost"
    assert wire.decode_datagram(lost[0]).__class__ is wire.RefAdd
    assert "b" not in a.roster
    # two PONGs disagree with a's digest -> a re-fetches (reclaim + REFERENCE?)
    mismatches = 0
    for _ in range(2):
        a.ping(a.digest())
        pong = a.recv_until(lambda m: isinstance(m, wire.Pong))
        mismatches += pong.digest != a.digest()
    assert mismatches == 2
    assert a.register(keyword=a.keyword) == wire.Keyword(a.keyword)
    assert "b" in a.roster
    a.ping(a.digest())
    assert a.recv_until(lambda m: isinstance(m, wire.Pong)).digest == a.digest()


def test_join_racing_a_registration_is_caught_up(server, joined, dir_client) -> None:
    joined(server, "early")
    # REFERENCE?, then someone joins, then our first PING: we must still hear of them
    late2 = dir_client(server, "late2")
    tcp = TcpSession(server.address)
    late2.keyword = tcp.request(wire.Connect("late2")).keyword
    ref = tcp.request(wire.ReferenceRequest())
    late2.roster = {e.nickname: (e.host, e.port) for e in ref.entries}
    tcp.send(b"CHANNEL_SWITCH\n")
    assert tcp.closed()
    joined(server, "racer")  # joins after late2's REFERENCE, before late2's first PING
    late2.ping()
    assert late2.recv_until(lambda m: isinstance(m, wire.RefAdd) and any(
        e.nickname == "racer" for e in m.entries))
    assert set(late2.roster) == {"early", "racer"}


def test_unknown_keyword_is_answered_small_and_rate_limited(server, udp_socket) -> None:
    ping = wire.encode_datagram(wire.Ping("NoSuchKeyword", "ghost", wire.EMPTY_DIGEST))
    start = time.monotonic()
    for _ in range(300):
        udp_socket.sendto(ping, server.address)
    udp_socket.settimeout(0.5)
    replies = []
    try:
        while True:
            data, _ = udp_socket.recvfrom(65536)
            replies.append(data)
    except TimeoutError:
        pass
    elapsed = time.monotonic() - start
    assert replies and all(r == b"NoSuchKeyword 7 UNKNOWN" for r in replies)
    assert all(len(r) <= len(ping) for r in replies)
    assert len(replies) <= 50 + 50 * elapsed + 1  # the bucket: burst 50, then 50/s
    assert len(replies) < 300
    # a design PING too short to answer without amplification gets no reply at all
    udp_socket.sendto(b"k 6 PING x", server.address)
    udp_socket.settimeout(0.3)
    with pytest.raises(TimeoutError):
        udp_socket.recvfrom(100)


def test_quit_needs_matching_nickname(server, joined) -> None:
    a = joined(server, "a")
    b = joined(server, "b")
    a.recv_until(lambda m: isinstance(m, wire.RefAdd))
    b.send(wire.encode_datagram(wire.Quit(b.keyword, "a")))  # b tries to remove a
    b.send(wire.encode_datagram(wire.Quit(a.keyword, "b")))  # a's keyword, b's nickname
    a.ping(a.digest())
    pong = a.recv_until(lambda m: isinstance(m, wire.Pong))
    assert pong.digest == a.digest() and "b" in a.roster
    b.quit()
    assert a.recv_until(lambda m: isinstance(m, wire.RefDel)) == wire.RefDel(a.keyword, ("b",))


@pytest.mark.parametrize("server", [{"ping_interval": 5.0,
                                     "extra_args": ("--register-rate", "0")}], indirect=True)
def test_fifty_joins_reach_a_listener_in_a_handful_of_datagrams(server, joined,
                                                                dir_client) -> None:
    listener = joined(server, "listener")
    clients = []
    for i in range(50):
        c = dir_client(server, f"joiner{i:02d}")
        assert isinstance(c.register(), wire.Keyword)
        clients.append(c)
    for c in clients:  # all first PINGs at once
        c.ping()
    got = []
    while sum(len(m.entries) for m in got) < 50:
        msg = listener.recv(3)
        assert msg is not None, f"only {sum(len(m.entries) for m in got)} of 50 arrived"
        got.append(msg)
    assert all(isinstance(m, wire.RefAdd) for m in got)
    assert len(got) <= 8, [len(m.entries) for m in got]  # a handful, not 50
    assert len(listener.roster) == 50
    # each joiner ends up with the full roster (catch-up + coalesced updates)
    last = clients[-1]
    assert wait_until(lambda: (last.recv(0.05), len(last.roster))[1] == 50, timeout=3)


def test_unregistered_datagram_sources_get_nothing(server, udp_socket) -> None:
    for data in (b"hello", b"x 4 QUIT", b"kw 6 QUIT x", b"kw 7 UNKNOWN"):
        udp_socket.sendto(data, server.address)
    udp_socket.settimeout(0.3)
    with pytest.raises((TimeoutError, socket.timeout)):
        udp_socket.recvfrom(100)


@pytest.mark.parametrize("server", [{"ping_interval": 5.0,
                                     "extra_args": ("--register-rate", "0")}], indirect=True)
def test_churn_leaves_every_roster_right(server, joined, dir_client) -> None:
    """Leaves mixed with joins (removals then travel a slice of the recipients per push, after
    the additions): every client still ends with exactly the server's roster."""
    listeners = [joined(server, f"stay{i}") for i in range(4)]
    first = [joined(server, f"old{i:02d}") for i in range(20)]
    late = []
    for i in range(20):  # each wave: one leaves, one joins, first PINGs right away
        c = dir_client(server, f"new{i:02d}")
        assert isinstance(c.register(), wire.Keyword)
        first[i].quit()
        c.ping()
        late.append(c)
    want = {c.nickname for c in listeners + late}
    for who in listeners + late:
        assert wait_until(lambda who=who: (who.recv(0.05), set(who.roster) | {who.nickname})[1]
                          == want, timeout=5), (who.nickname, sorted(set(who.roster) ^ want))
        who.ping(who.digest())
        # generous: on a loaded 2-core machine the server may be busy for a while
        pong = who.recv_until(lambda m: isinstance(m, wire.Pong), timeout=10)
        assert pong is not None and pong.digest == who.digest()
