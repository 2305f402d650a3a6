"""Reaching peers end to end through emulated home routers (issue 10): engines in network
namespaces behind ``masquerade`` routers that drop unsolicited UDP, forget idle mappings after
2 s and do not hairpin; the directory server on the "internet" between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from client import events as ev
from tests.nat import INTERNET_IP, Lab, lab_unavailable, nat_lab
from tests.reachlab import LabEngine, LabServer

reason = lab_unavailable(nat=True)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or "")]

UDP_TIMEOUT = 2


@pytest.fixture
def homes(request, tmp_path: Path):
    """(routers, server, made): routers with ``request.param`` hosts each, a server on the
    internet, and a list the test adds its LabEngines to (closed afterwards)."""
    shape = getattr(request, "param", (1, 1))
    made: list[LabEngine] = []
    with Lab() as lab:
        inet, routers = nat_lab(lab, shape, udp_timeout=UDP_TIMEOUT)
        srv = LabServer(inet, INTERNET_IP, tmp_path / "dir.db").start()
        try:
            yield routers, srv, made
        finally:
            for e in made:
                e.close()
            srv.kill()


def engine(made: list[LabEngine], host, srv, nick: str, tmp_path: Path, **kw) -> LabEngine:
    e = LabEngine(host.ns, srv.address, nick, tmp_path / kw.pop("config", nick), **kw)
    made.append(e)
    return e


def test_first_contact_both_ways_between_two_nats(homes, tmp_path) -> None:
    (ra, rb), srv, made = homes
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path)
    bob = engine(made, rb.hosts[0], srv, "bob", tmp_path)
    alice.wait_roster(["bob"])
    bob.wait_roster(["alice"])
    # nobody wrote first: the punch at join opened both routers
    alice.engine.send_private("bob", "hello from behind router A")
    bob.wait_for(ev.PrivateMessage, text="hello from behind router A", timeout=3)
    bob.engine.send_private("alice", "and back from behind B")
    alice.wait_for(ev.PrivateMessage, text="and back from behind B", timeout=3)
    assert not alice.of(ev.NotDelivered) and not bob.of(ev.NotDelivered)
    assert alice.path("bob").startswith("direct through NAT 203.0.113.2:")
    assert "rtt" in alice.path("bob")


@pytest.mark.parametrize("homes", [(2, 1)], indirect=True)
def test_two_behind_one_router_and_a_room_message_near_and_far(homes, tmp_path) -> None:
    (ra, rb), srv, made = homes
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path, lan=True)
    carol = engine(made, ra.hosts[1], srv, "carol", tmp_path, lan=True)
    bob = engine(made, rb.hosts[0], srv, "bob", tmp_path, lan=True)
    for e, others in ((alice, ["bob", "carol"]), (carol, ["alice", "bob"]),
                      (bob, ["alice", "carol"])):
        e.wait_roster(others)
    # the directory lists alice and carol at the router's address, which does not hairpin:
    # only LAN discovery brings them together
    alice.wait_until(lambda: alice.path("carol").startswith("LAN 10.0.1.3:"), "LAN path")
    alice.engine.send_private("carol", "psst, same router")
    carol.wait_for(ev.PrivateMessage, text="psst, same router", timeout=3)
    carol.engine.send_room("hello room")
    alice.wait_for(ev.RoomMessage, text="hello room", timeout=3)
    bob.wait_for(ev.RoomMessage, text="hello room", timeout=3)
    assert carol.path("bob").startswith("direct")
    assert not carol.of(ev.NotDelivered)


def test_changed_key_flagged_at_join_across_nats(homes, tmp_path) -> None:
    (ra, rb), srv, made = homes
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path)
    bob = engine(made, rb.hosts[0], srv, "bob", tmp_path)
    alice.wait_roster(["bob"])
    alice.wait_until(lambda: alice.engine.whois("bob").fingerprint is not None, "bob's key")
    bob.close()
    made.remove(bob)
    alice.wait_for(ev.Left, nickname="bob")
    # someone else registers as bob, with another key; nobody writes
    engine(made, rb.hosts[0], srv, "bob", tmp_path, config="impostor")
    alice.wait_for(ev.KeyChanged, nickname="bob", timeout=5)


def test_conversation_after_the_routers_forgot_the_mapping(homes, tmp_path) -> None:
    (ra, rb), srv, made = homes
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path)
    bob = engine(made, rb.hosts[0], srv, "bob", tmp_path)
    alice.wait_until(lambda: alice.path("bob").startswith("direct"), "a path to bob")
    alice.engine.send_private("bob", "before the quiet spell")
    bob.wait_for(ev.PrivateMessage, text="before the quiet spell", timeout=3)
    # quiet for longer than the routers keep an idle mapping (keepalive every 25 s: too late)
    import time
    time.sleep(UDP_TIMEOUT + 1.5)
    bob.engine.send_private("alice", "after the quiet spell")
    alice.wait_for(ev.PrivateMessage, text="after the quiet spell", timeout=6)
    assert not bob.of(ev.NotDelivered)


def test_netcheck_and_a_strangers_requests(homes, tmp_path) -> None:
    (ra, rb), srv, made = homes
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path)
    bob = engine(made, rb.hosts[0], srv, "bob", tmp_path)
    carol = LabEngine(srv.ns, srv.address, "carol", tmp_path / "carol")  # no NAT
    made.append(carol)
    for e in (alice, carol):
        e.wait_until(lambda e=e: any("unsolicited UDP reaches us: yes" in x or
                                     "unsolicited UDP reaches us: no" in x
                                     for x in e.engine.netcheck()), "probe result", 6)
    lines = "\n".join(alice.engine.netcheck())
    assert "public address: 203.0.113.1:" in lines and "behind NAT: yes" in lines
    assert "unsolicited UDP reaches us: no" in lines
    lines = "\n".join(carol.engine.netcheck())
    assert f"public address: {INTERNET_IP}:" in lines and "behind NAT: no" in lines
    assert "unsolicited UDP reaches us: yes" in lines
    # a stranger on the internet guesses keywords: nothing comes back, nobody is nudged
    from models import reach_wire as rw
    from tests.nat import udp_socket

    stranger = udp_socket(srv.ns, (INTERNET_IP, 0), timeout=0.3)
    try:
        before = bob.engine._reach.stats["nudges_heard"]
        for i in range(300):
            kw = f"guess{i}"
            for msg in (rw.Where(kw, "alice"), rw.ProbeRequest(kw, "alice"),
                        rw.NudgeRequest(kw, "alice", "bob")):
                stranger.sendto(rw.encode(msg), srv.address)
        with pytest.raises(TimeoutError):
            stranger.recvfrom(2048)
        assert bob.engine._reach.stats["nudges_heard"] == before
    finally:
        stranger.close()
