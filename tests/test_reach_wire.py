"""The reachability extension, sans-IO: the codec (round trips, hostile bytes) and the server's
rules (authentication, registered targets only, rate limits, never a reflector), fake time."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from models import reach_wire as rw
from models.errors import ProtocolError
from models.reach_server import ReachLimits, ReachService, Registered

keywords = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)
nicks = st.from_regex(r"[a-z][a-z0-9]{0,15}", fullmatch=True)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ports = st.integers(1, 65535)


@given(keywords, nicks, nicks, ipv4, ports)
def test_round_trips_and_sizes(kw: str, nick: str, target: str, ip: str, port: int) -> None:
    for msg in (rw.Where(kw, nick), rw.ProbeRequest(kw, nick), rw.NudgeRequest(kw, nick, target),
                rw.Here(kw, (ip, port)), rw.Probe(kw), rw.Nudge(kw, nick, (ip, port))):
        data = rw.encode(msg)
        assert rw.is_reach(data)
        assert rw.decode(data) == msg
    # what the server sends is never larger than the request that caused it
    assert len(rw.encode(rw.Here("k" * 24, ("::ffff:1.2.3.4", 65535)))) <= \
        len(rw.encode(rw.Where(kw, nick)))
    assert len(rw.encode(rw.Nudge("k" * 24, nick, ("1234:5678::9abc:def0:1", 65535)))) <= \
        len(rw.encode(rw.NudgeRequest(kw, nick, target)))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        rw.decode(data)


def test_unpadded_requests_are_refused() -> None:
    for body in (b"WHERE? alice -", b"PROBE? alice -", b"NUDGE alice bob -"):
        try:
            rw.decode(b"kw %d %s" % (len(body), body))
        except ProtocolError as exc:
            assert exc.code == "BAD_REACH"
        else:
            raise AssertionError("a short request was accepted")


A, B, C = ("10.0.0.1", 1000), ("10.0.0.2", 2000), ("10.0.0.3", 3000)


def service(limits: ReachLimits | None = None) -> ReachService:
    regs = {"kwa": Registered("alice", "kwa", A), "kwb": Registered("bob", "kwb", B),
            "kwm": Registered("mallory", "kwm", C, mac_ok=lambda *a: False)}
    by_nick = {r.nickname: r for r in regs.values()}
    return ReachService(regs.get, by_nick.get, limits or ReachLimits())


def test_where_answers_the_registered_address_only() -> None:
    s = service()
    where = rw.encode(rw.Where("kwa", "alice"))
    (out,) = s.on_datagram(where, A, 0.0)
    assert out.addr == A and rw.decode(out.data) == rw.Here("kwa", A)
    assert s.on_datagram(where, ("6.6.6.6", 1), 0.0) == []       # spoofed source: nothing
    assert s.on_datagram(rw.encode(rw.Where("kwa", "bob")), A, 0.0) == []   # wrong nickname
    assert s.on_datagram(rw.encode(rw.Where("nope", "alice")), A, 0.0) == []  # unknown
    # with the MAC extension in use, no (valid) tail: nothing
    assert s.on_datagram(rw.encode(rw.Where("kwm", "mallory")), C, 0.0) == []


def test_here_pushed_when_the_ping_source_moves() -> None:
    s = service()
    s.on_datagram(rw.encode(rw.Where("kwa", "alice")), A, 0.0)
    assert s.after_ping(b"kwa", A, 1.0) == []          # same address: nothing new
    moved = ("10.0.0.1", 1001)
    s.by_keyword = lambda kw: Registered("alice", "kwa", moved) if kw == "kwa" else None
    (out,) = s.after_ping(b"kwa", moved, 2.0)
    assert out.addr == moved and rw.decode(out.data) == rw.Here("kwa", moved)


def test_probe_from_the_probe_port_to_the_requester_once_per_gap() -> None:
    s = service(ReachLimits(probe_gap=30.0))
    probe = rw.encode(rw.ProbeRequest("kwa", "alice"))
    (out,) = s.on_datagram(probe, A, 0.0)
    assert out.probe_port and out.addr == A and len(out.data) < len(probe)
    assert s.on_datagram(probe, A, 10.0) == []
    assert len(s.on_datagram(probe, A, 31.0)) == 1


def test_nudge_goes_to_the_registered_target_only_and_is_rate_limited() -> None:
    s = service(ReachLimits(nudge_pair_gap=2.0, nudge_rate=3.0))
    nudge = rw.encode(rw.NudgeRequest("kwa", "alice", "bob"))
    assert s.on_datagram(nudge, A, 0.0) == []   # bob never spoke the extension: no NUDGE
    s.on_datagram(rw.encode(rw.Where("kwb", "bob")), B, 0.0)
    (out,) = s.on_datagram(nudge, A, 0.0)
    assert out.addr == B and len(out.data) <= len(nudge)
    assert rw.decode(out.data) == rw.Nudge("kwb", "alice", A)
    assert s.on_datagram(nudge, A, 1.0) == []                  # same pair within 2 s
    assert len(s.on_datagram(nudge, A, 2.5)) == 1
    # unknown target, ourselves, a stranger: nothing at all
    assert s.on_datagram(rw.encode(rw.NudgeRequest("kwa", "alice", "zed")), A, 9.0) == []
    assert s.on_datagram(rw.encode(rw.NudgeRequest("kwa", "alice", "alice")), A, 9.0) == []
    assert s.on_datagram(nudge, ("6.6.6.6", 9), 9.0) == []
    assert s.on_datagram(rw.encode(rw.NudgeRequest("guess", "alice", "bob")), A, 9.0) == []
    # a flood toward many targets stays under the per-asker rate
    many = ReachService(lambda kw: Registered("alice", "kwa", A) if kw == "kwa" else
                        Registered(kw, kw, C), lambda n: Registered(n, "t" + n, C),
                        ReachLimits(nudge_rate=3.0))
    many.capable.update(f"tp{i}" for i in range(100))
    sent = sum(len(many.on_datagram(rw.encode(rw.NudgeRequest("kwa", "alice", f"p{i}")), A,
                                    20.0)) for i in range(100))
    assert sent == 3


def test_server_to_client_messages_are_not_accepted_as_requests() -> None:
    s = service()
    for msg in (rw.Here("kwa", A), rw.Probe("kwa"), rw.Nudge("kwa", "bob", B)):
        assert s.on_datagram(rw.encode(msg), A, 0.0) == []
    assert s.stats.refused == 3


def test_with_the_mac_extension_requests_need_a_fresh_valid_mac() -> None:
    from models.dirauth import ClientAuth, ServerAuth

    key = bytes(range(32))
    client, server = ClientAuth(), ServerAuth(key)
    client.key = key
    s = ReachService(lambda kw: Registered("alice", "kwa", A, server.check_raw) if kw == "kwa"
                     else None, lambda n: None)
    where = client.seal_body("kwa", rw.request_body(rw.Where("kwa", "alice")))
    (out,) = s.on_datagram(where, A, 0.0)
    assert rw.decode(out.data) == rw.Here("kwa", A) and len(out.data) <= len(where)
    assert s.on_datagram(where, A, 1.0) == []                     # a replay
    forged = where[:-3] + (b"AAA" if where[-3:] != b"AAA" else b"BBB")
    assert s.on_datagram(forged, A, 1.0) == []                    # a wrong MAC
    assert s.on_datagram(rw.encode(rw.Where("kwa", "alice")), A, 1.0) == []  # none at all
    assert len(s.on_datagram(client.seal_body("kwa", rw.request_body(
        rw.Where("kwa", "alice"))), A, 2.0)) == 1                 # the next counter: fine
