"""The directory's opt-in relay: its codec (models/relay_wire.py), its rules with fake time
(models/relay.py), and the real server.py with --relay and without it, driven by plain
sockets: only two registered clients that both asked are relayed, byte for byte, under the
caps; unregistered sources, unknown targets and strangers get nothing."""

from __future__ import annotations

import contextlib
import itertools
import socket
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import relay_wire as rw
from models.errors import ProtocolError
from models.relay import RelayLimits, RelayService
from tests.conftest import DirClient

# ------------------------------------------------------------------ codec


@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        rw.decode(data)
    with contextlib.suppress(ProtocolError):
        rw.decode(b"kw 20 RELAY? " + data)


nicks = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20
                ).filter(lambda s: s.isprintable() and " " not in s)
keywords = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)


@given(keywords, nicks, nicks, st.binary(min_size=8, max_size=8),
       st.sampled_from(rw.REASONS))
def test_messages_round_trip(kw, nick, target, pair, reason) -> None:
    for msg in (rw.RelayRequest(kw, nick, target), rw.RelayReady(kw, target, pair),
                rw.RelayRefused(kw, target, reason), rw.RelayInvite(kw, nick)):
        assert rw.decode(rw.encode(msg)) == msg
    req = rw.encode(rw.RelayRequest(kw, nick, target))
    assert rw.is_relay(req)
    # what a request may cause is never larger than the request
    for answer in (rw.RelayReady("x" * 24, nick, pair), rw.RelayRefused("x" * 24, target, reason),
                   rw.RelayInvite("x" * 24, nick)):
        assert len(rw.encode(answer)) <= len(req)


# ------------------------------------------------------------------ rules, fake time


@dataclass(eq=False)
class Reg:
    nickname: str
    keyword: str
    addr: tuple[str, int] | None


class Table:
    def __init__(self) -> None:
        self.regs: dict[str, Reg] = {}

    def add(self, nick: str, addr: tuple[str, int]) -> Reg:
        reg = self.regs[nick.lower()] = Reg(nick, f"kw{nick}", addr)
        return reg

    def by_keyword(self, kw: str) -> Reg | None:
        return next((r for r in self.regs.values() if r.keyword == kw), None)

    def by_nickname(self, key: str) -> Reg | None:
        return self.regs.get(key)


def service(**limits) -> tuple[RelayService, Table]:
    t = Table()
    counter = itertools.count()
    svc = RelayService(t.by_keyword, t.by_nickname, RelayLimits(enabled=True, **limits),
                       rng=lambda n: next(counter).to_bytes(n, "big"))
    return svc, t


def ask(svc: RelayService, reg: Reg, target: str, now: float = 0.0, source=None) -> list:
    data = rw.encode(rw.RelayRequest(reg.keyword, reg.nickname, target))
    return svc.on_request(data, source or reg.addr, now)


def test_a_pair_needs_both_to_ask_and_the_other_is_invited() -> None:
    svc, t = service()
    a, b = t.add("alice", ("1.1.1.1", 1000)), t.add("bob", ("2.2.2.2", 2000))
    first = ask(svc, a, "bob")
    kinds = {o.addr: rw.decode(o.data) for o in first}
    assert kinds[b.addr] == rw.RelayInvite(b.keyword, "alice")
    assert kinds[a.addr] == rw.RelayRefused(a.keyword, "bob", "wait")
    second = ask(svc, b, "alice", 1.0)
    ready = {o.addr: rw.decode(o.data) for o in second}
    assert isinstance(ready[a.addr], rw.RelayReady) and ready[a.addr].target == "bob"
    pid = ready[b.addr].pair
    assert ready[a.addr].pair == pid and svc.pairs == 1
    data = rw.wrap(pid, b"\xc1\x01\x20" + bytes(500))
    out = svc.forward(data, a.addr, 2.0)
    assert out is not None and out.addr == b.addr and out.data == data
    back = svc.forward(data, b.addr, 2.0)
    assert back is not None and back.addr == a.addr
    assert svc.bytes == 2 * len(data) and svc.forwarded == 2


def test_strangers_unknown_targets_and_wrong_sources_get_nothing() -> None:
    svc, t = service()
    a, b = t.add("alice", ("1.1.1.1", 1000)), t.add("bob", ("2.2.2.2", 2000))
    assert ask(svc, a, "bob", source=("6.6.6.6", 1000)) == []   # not from alice's address
    forged = rw.encode(rw.RelayRequest("nosuchkw", "alice", "bob"))
    assert svc.on_request(forged, a.addr, 0.0) == []
    (refusal,) = ask(svc, a, "nobody")
    assert rw.decode(refusal.data).reason == "unknown" and refusal.addr == a.addr
    ask(svc, a, "bob")
    ready = ask(svc, b, "alice", 0.5)
    pid = rw.decode(ready[0].data).pair
    assert svc.forward(rw.wrap(pid, b"x" * 100), ("6.6.6.6", 1000), 1.0) is None
    assert svc.forward(rw.wrap(b"\xff" * 8, b"x" * 100), a.addr, 1.0) is None
    assert svc.stats["dropped_source"] == 1 and svc.stats["dropped_unknown"] == 1


def test_the_caps_hold() -> None:
    svc, t = service(rate=10_000, burst=10_000, max_pairs=1)
    a, b, c = (t.add(n, (f"1.1.1.{i}", 1000)) for i, n in enumerate(("alice", "bob", "carol")))
    ask(svc, a, "bob")
    pid = rw.decode(ask(svc, b, "alice")[0].data).pair
    ask(svc, c, "alice")
    (full,) = [o for o in ask(svc, a, "carol", 0.1) if o.addr == a.addr]
    assert rw.decode(full.data).reason == "full"
    sent = sum(1 for _ in range(50) if svc.forward(rw.wrap(pid, bytes(991)), a.addr, 1.0))
    assert sent == 10                          # 10 kB banked, 1 kB datagrams
    assert svc.forward(rw.wrap(pid, bytes(991)), a.addr, 1.1) is not None   # 1 kB refilled


def test_a_pair_ends_when_a_client_leaves_or_is_silent() -> None:
    svc, t = service(idle=10.0)
    a, b = t.add("alice", ("1.1.1.1", 1000)), t.add("bob", ("2.2.2.2", 2000))
    ask(svc, a, "bob")
    pid = rw.decode(ask(svc, b, "alice")[0].data).pair
    t.regs["bob"] = Reg("bob", "kwbob2", b.addr)     # bob registered again
    assert svc.forward(rw.wrap(pid, b"x" * 10), a.addr, 1.0) is None and svc.pairs == 0
    b2 = t.regs["bob"]
    ask(svc, a, "bob", 2.0)
    ask(svc, b2, "alice", 2.0)
    assert svc.pairs == 1
    svc.expire(11.0)
    assert svc.pairs == 1
    svc.expire(12.5)
    assert svc.pairs == 0


def test_without_relay_the_answer_says_off() -> None:
    t = Table()
    svc = RelayService(t.by_keyword, t.by_nickname, RelayLimits(enabled=False))
    a, _b = t.add("alice", ("1.1.1.1", 1000)), t.add("bob", ("2.2.2.2", 2000))
    (out,) = ask(svc, a, "bob")
    assert rw.decode(out.data).reason == "off" and svc.pairs == 0


# ------------------------------------------------------------------ the real server


def _udp(port_owner: DirClient) -> socket.socket:
    return port_owner.udp


def _registered(server, nick: str) -> DirClient:
    c = DirClient(server, nick)
    c.register()
    c.ping()
    return c


def _recv(sock: socket.socket, timeout: float = 1.0) -> bytes | None:
    sock.settimeout(timeout)
    while True:
        try:
            data, _src = sock.recvfrom(4096)
        except TimeoutError:
            return None
        if data.startswith(b"kw") or b" RELAY" in data[:64] or data[:1] == b"\xc0":
            return data


def _relay_msgs(sock: socket.socket, timeout: float = 1.0) -> list:
    out = []
    while (data := _recv(sock, timeout)) is not None:
        if data[:1] == b"\xc0":
            out.append(data)
        else:
            with contextlib.suppress(ProtocolError):
                out.append(rw.decode(data))
        timeout = 0.2
    return out


def _request(c: DirClient, target: str) -> None:
    c.send(rw.encode(rw.RelayRequest(c.keyword, c.nickname, target)))


@pytest.mark.parametrize("server", [{"ping_interval": 10.0,
                                     "extra_args": ["--relay", "--relay-rate", "20000"]}],
                         indirect=True)
def test_the_server_relays_only_for_two_registered_clients_that_asked(server) -> None:
    alice, bob = _registered(server, "alice"), _registered(server, "bob")
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        _request(alice, "bob")
        assert any(isinstance(m, rw.RelayInvite) and m.nickname == "alice"
                   for m in _relay_msgs(bob.udp))
        _request(bob, "alice")
        (ready,) = [m for m in _relay_msgs(alice.udp) if isinstance(m, rw.RelayReady)]
        pid = ready.pair
        payload = rw.wrap(pid, b"\xc1\x01\x20" + bytes(1000))
        alice.send(payload)
        got = [m for m in _relay_msgs(bob.udp) if isinstance(m, bytes)]
        assert got == [payload]                           # the very same bytes
        # a stranger using the pair id, an unknown pair, an unknown target: nothing
        stranger.sendto(payload, server.address)
        alice.send(rw.wrap(b"\x00" * 8, bytes(100)))
        _request(alice, "nobody")
        assert [m for m in _relay_msgs(bob.udp, 0.5) if isinstance(m, bytes)] == []
        assert any(isinstance(m, rw.RelayRefused) and m.reason == "unknown"
                   for m in _relay_msgs(alice.udp, 0.5))
        stranger.sendto(rw.encode(rw.RelayRequest("nokeyword", "eve", "bob")), server.address)
        assert _recv(stranger, 0.5) is None
        # over the cap: 20 kB/s, then dropped (both still registered: they PING)
        alice.ping()
        bob.ping()
        for _ in range(60):
            alice.send(payload)
        relayed = [m for m in _relay_msgs(bob.udp, 0.5) if isinstance(m, bytes)]
        assert 10 <= len(relayed) <= 25
        # and once bob is gone, nothing more reaches his address
        bob.quit()
        alice.ping()
        alice.send(payload)
        assert [m for m in _relay_msgs(bob.udp, 0.5) if isinstance(m, bytes)] == []
    finally:
        stranger.close()


def test_a_server_without_relay_says_so(server) -> None:
    alice, _bob = _registered(server, "alice"), _registered(server, "bob")
    _request(alice, "bob")
    msgs = _relay_msgs(alice.udp)
    assert rw.RelayRefused(alice.keyword, "bob", "off") in msgs


# ------------------------------------------------------------------ the client's side


def test_two_clients_get_a_pair_through_the_service_and_exchange_datagrams() -> None:
    from client.reach.relay import RelayClient, RelayInvited, RelayState, RelayUp

    svc, t = service()
    a, b = t.add("alice", ("1.1.1.1", 1000)), t.add("bob", ("2.2.2.2", 2000))
    ca, cb = RelayClient(), RelayClient()
    regs = {a.addr: (a, ca), b.addr: (b, cb)}

    def deliver(outs) -> list:
        got = []
        for o in outs:
            reg, client = regs[o.addr]
            got.append((reg.nickname, client.on_server(o.data, reg.keyword)))
        return got

    req = ca.want(a.keyword, "alice", "bob", 0.0)
    assert ca.want(a.keyword, "alice", "bob", 1.0) is None        # not again so soon
    got = deliver(svc.on_request(req, a.addr, 0.0))
    assert ("bob", RelayInvited("alice")) in got
    assert ca.state("bob") is RelayState.WAITING
    req_b = cb.want(b.keyword, "bob", "alice", 0.5)
    ups = dict(deliver(svc.on_request(req_b, b.addr, 0.5)))
    assert isinstance(ups["alice"], RelayUp) and isinstance(ups["bob"], RelayUp)
    relay_addr = ups["alice"].addr
    assert ca.is_relay_addr(relay_addr)
    datagram = b"\xc1\x01\x20" + bytes(300)
    wrapped = ca.wrap(relay_addr, datagram)
    out = svc.forward(wrapped, a.addr, 1.0)
    assert out is not None and out.addr == b.addr
    peer, addr, inner = cb.unwrap(out.data)
    assert (peer, inner) == ("alice", datagram) and addr == ups["bob"].addr
    assert cb.unwrap(rw.wrap(b"\x09" * 8, datagram)) is None


def test_the_reason_is_said_in_plain_words() -> None:
    from client.reach.relay import RelayClient

    t = Table()
    svc = RelayService(t.by_keyword, t.by_nickname, RelayLimits(enabled=False))
    a, _b = t.add("alice", ("1.1.1.1", 1000)), t.add("bob", ("2.2.2.2", 2000))
    ca = RelayClient()
    (out,) = svc.on_request(ca.want(a.keyword, "alice", "bob", 0.0), a.addr, 0.0)
    assert ca.on_server(out.data, a.keyword) is None
    assert ca.unreachable_reason("bob", behind_nat=True) == \
        "no direct path to bob: both behind strict NAT; the server does not relay"


# ------------------------------------------------------------------ the engine's glue


class _Transport:
    """The one Transport call RelayLink makes: unwrap (authenticates; here: accepts)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []

    def unwrap(self, peer: str, datagram: bytes, now: float) -> bool:
        self.got.append((peer, datagram))
        return True


def test_relay_link_asks_adds_the_candidate_relays_and_says_why_not() -> None:
    from client import events as ev
    from client.reach.nat import NatWatch
    from client.reach.paths import PathKind, PathManager
    from client.relaylink import Credentials, RelayLink
    from client.udp import UdpEdge

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)
    udp = UdpEdge(("127.0.0.1", 0), {"sent": 0})
    transport, heard, emitted = _Transport(), [], []
    creds = Credentials(server.getsockname(), "kwA", "alice")
    paths, nat = PathManager(), NatWatch(udp.address[1])
    nat.set_local(["10.0.1.2"])
    nat.public_seen(("203.0.113.1", 40000))       # behind NAT
    link = RelayLink(udp, transport, server=lambda: creds, paths=paths, nat=nat,
                     heard=lambda p, a, now, n: heard.append((p, a, n)), emit=emitted.append)
    try:
        link.no_path("bob", 0.0)
        request, src = server.recvfrom(4096)
        assert rw.decode(request) == rw.RelayRequest("kwA", "alice", "bob")
        pair = bytes(range(8))
        assert link.on_server_datagram(rw.encode(rw.RelayReady("kwA", "bob", pair)), 0.1)
        ((addr, kind),) = paths.candidates("bob")
        assert kind == PathKind.RELAY and link.client.is_relay_addr(addr)
        assert link.display(addr) == creds.addr and link.report() == ["relay to bob: ready"]
        assert link.send(b"\xc1\x01\x20sealed", addr)
        assert server.recvfrom(4096)[0] == rw.wrap(pair, b"\xc1\x01\x20sealed")
        assert not link.send(b"x", ("127.0.0.1", 9))           # a real address: not ours
        assert link.on_server_datagram(rw.wrap(pair, b"\xc1\x01\x20from bob"), 0.2)
        assert transport.got == [("bob", b"\xc1\x01\x20from bob")] and heard[0][:2] == ("bob", addr)
        assert not link.on_server_datagram(b"kwA 5 PONG x", 0.3)   # not the relay's

        link.no_path("carol", 10.0)
        assert link.on_server_datagram(rw.encode(rw.RelayRefused("kwA", "carol", "off")), 10.1)
        assert ev.PeerUnreachable("carol", "no direct path to carol: both behind strict NAT; "
                                  "the server does not relay") in emitted
        assert link.reason("carol") is not None and link.reason("bob") is None  # relayed
        link.path_found("carol")
        assert link.reason("carol") is None
    finally:
        udp.close()
        server.close()
