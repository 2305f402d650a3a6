"""LAN discovery for real (client/reach/lan.py): hosts in network namespaces on one switch.
Two clients and a server find each other within a second, by multicast and by broadcast alone,
forget a host that stops, and a flood of forged announcements stays bounded."""

from __future__ import annotations

import os
import queue
import random
import socket
import time

import pytest

from client.reach.discovery import MCAST_GROUP, Announcement
from client.reach.lan import Identity, LanDiscovery
from client.reach.lancache import CacheLimits, LanEvent, PeerGone, PeerSeen, ServerSeen
from tests.nat import Lab, in_netns, lab_unavailable, lan_lab

reason = lab_unavailable()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or "")]

FAST = {"interval": 0.3}
LIMITS = CacheLimits(ttl=1.0)


class Node:
    """A LanDiscovery running inside a namespace; its events collected in a queue."""

    def __init__(self, ns: str, me: Identity, port: int,
                 limits: CacheLimits = LIMITS) -> None:
        self.events: queue.Queue[LanEvent] = queue.Queue()
        self.seen: list[LanEvent] = []  # taken from the queue, not yet matched

        def deliver(evs: list[LanEvent]) -> None:
            for e in evs:
                self.events.put(e)

        self.lan = in_netns(ns, lambda: LanDiscovery(me, deliver, port=port, limits=limits,
                                                     **FAST).start())

    def wait_for(self, pred, timeout: float = 2.0) -> LanEvent:
        """The first event so far (or within ``timeout``) matching ``pred``; it is used up."""
        for i, e in enumerate(self.seen):
            if pred(e):
                return self.seen.pop(i)
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                break
            if pred(e):
                return e
            self.seen.append(e)
        raise AssertionError(f"no matching event within {timeout}s; cache "
                             f"{self.lan.snapshot()}")

    def wait_heard(self, nicks: set[str], servers: int = 0, timeout: float = 2.0) -> None:
        """Until the cache holds at least these peers and this many servers."""
        end = time.monotonic() + timeout
        while True:
            peers, srvs = self.lan.snapshot()
            if nicks <= {p.nickname for p in peers} and len(srvs) >= servers:
                return
            assert time.monotonic() < end, f"still {peers}, {srvs}"
            time.sleep(0.02)

    def close(self) -> None:
        self.lan.close()


def key(n: int) -> bytes:
    return bytes([n]) * 32


@pytest.fixture
def switch():
    with Lab() as lab:
        hosts = lan_lab(lab, 3)
        yield lab, hosts, random.randint(20000, 60000)


def test_clients_and_a_server_find_each_other(switch) -> None:
    _lab, (h0, h1, h2), port = switch
    t0 = time.monotonic()
    a = Node(h0.ns, Identity(41000, "alice", key(1)), port)
    b = Node(h1.ns, Identity(42000, "bob", key(2)), port)
    s = Node(h2.ns, Identity(7700, "club"), port)
    try:
        seen = a.wait_for(lambda e: isinstance(e, PeerSeen) and e.peer.nickname == "bob")
        assert seen.peer.key == key(2)
        assert seen.peer.addrs[0] == (h1.ip, 42000)
        srv = a.wait_for(lambda e: isinstance(e, ServerSeen))
        assert srv.server.addr == (h2.ip, 7700) and srv.server.label == "club"
        b.wait_for(lambda e: isinstance(e, PeerSeen) and e.peer.nickname == "alice")
        assert time.monotonic() - t0 < 2.0
        b.close()
        gone = a.wait_for(lambda e: isinstance(e, PeerGone), timeout=3)
        assert gone.key == key(2)
    finally:
        for n in (a, b, s):
            n.close()


@pytest.mark.parametrize("blocked", ["multicast", "broadcast"])
def test_either_multicast_or_broadcast_alone_is_enough(switch, blocked: str) -> None:
    lab, (h0, h1, _h2), port = switch
    match = (f"ip daddr {MCAST_GROUP}" if blocked == "multicast"
             else "ip daddr 10.77.0.255")
    lab.run(h0.ns, ["nft", "-f", "-"], stdin=(
        "table ip olc_block {\n chain input {\n  type filter hook input priority 0;\n"
        f"  {match} udp dport {port} counter drop\n }}\n}}\n"))
    a = Node(h0.ns, Identity(41000, "alice", key(1)), port)
    b = Node(h1.ns, Identity(42000, "bob", key(2)), port)
    try:
        a.wait_for(lambda e: isinstance(e, PeerSeen) and e.peer.nickname == "bob")
        out = lab.run(h0.ns, ["nft", "list", "table", "ip", "olc_block"])
        assert "packets 0 " not in out  # the other kind really was dropped
    finally:
        a.close()
        b.close()


def test_forged_and_flooding_announcements_stay_bounded(switch) -> None:
    _lab, (h0, h1, h2), port = switch
    limits = CacheLimits(ttl=1.0, rate=50, burst=50, per_ip_entries=8)
    a = Node(h0.ns, Identity(41000, "alice", key(1)), port, limits=limits)
    b = Node(h1.ns, Identity(42000, "bob", key(2)), port)

    def flood() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(2000):
            if i % 2:
                data = os.urandom(random.randint(0, 300))
            else:
                data = Announcement(False, 1 + i, os.urandom(8), f"x{i}", os.urandom(32),
                                    ()).encode()
            s.sendto(data, (h0.ip, port))
        s.close()

    try:
        in_netns(h2.ns, flood)
        a.wait_for(lambda e: isinstance(e, PeerSeen) and e.peer.nickname == "bob")
        peers, _servers = a.lan.snapshot()
        assert len([p for p in peers if p.addrs[0][0] == h2.ip]) <= 8
        assert a.lan.cache.stats.rate_limited > 100   # (the rest: socket buffer overflow)
        assert a.lan.cache.stats.table_full > 0
        assert a.lan.alive()
    finally:
        a.close()
        b.close()


def test_two_programs_on_one_host_share_the_discovery_port(switch) -> None:
    """A client beside the server on one machine (the usual 'no --server' case), and a
    second client on that machine: everyone hears everyone."""
    _lab, (h0, h1, _h2), port = switch
    a = Node(h0.ns, Identity(41000, "alice", key(1)), port)
    s = Node(h0.ns, Identity(7700, "club"), port)
    c = Node(h0.ns, Identity(43000, "carol", key(3)), port)
    b = Node(h1.ns, Identity(42000, "bob", key(2)), port)
    try:
        a.wait_heard({"bob", "carol"}, servers=1)
        c.wait_heard({"alice", "bob"}, servers=1)
        b.wait_heard({"alice", "carol"}, servers=1)
        for n in (a, c, b):
            assert [x.addr for x in n.lan.snapshot()[1]] == [(h0.ip, 7700)]
    finally:
        for n in (a, s, c, b):
            n.close()
