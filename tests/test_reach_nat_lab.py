"""The NAT lab itself (tests/nat.py), proven with plain UDP sockets before any engine uses it:
home routers drop unsolicited UDP, coordinated punching opens a path, the mapping expires after
the conntrack timeout, a router does not hairpin, and ``masquerade random`` is a symmetric NAT."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from client.reach.paths import PathConfig, PathKind, PathLost, PathManager, Probe
from tests.nat import INTERNET_IP, Lab, Reflector, lab_unavailable, nat_lab, public_address
from tests.nat import udp_socket as sock_in

reason = lab_unavailable(nat=True)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or "")]

TIMEOUT = 2  # conntrack UDP timeout in the routers, seconds


def got(s: socket.socket, wait: float = 0.3) -> list[bytes]:
    """Everything ``s`` receives within ``wait`` seconds (reflector answers excluded)."""
    out = []
    end = time.monotonic() + wait
    while (left := end - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data, _src = s.recvfrom(2048)
        except TimeoutError:
            break
        out.append(data)
    return out


@pytest.fixture
def two_homes():
    """(a, b, a_public, b_public): one host behind each of two routers, each registered with
    a reflector on the internet (as clients are with the directory)."""
    with Lab() as lab:
        inet, (ra, rb) = nat_lab(lab, (1, 1), udp_timeout=TIMEOUT)
        ref = Reflector(inet, INTERNET_IP)
        a = sock_in(ra.hosts[0].ns, (ra.hosts[0].ip, 0))
        b = sock_in(rb.hosts[0].ns, (rb.hosts[0].ip, 0))
        try:
            yield a, b, public_address(a, ref.addr), public_address(b, ref.addr)
        finally:
            a.close()
            b.close()
            ref.close()


def test_unsolicited_udp_is_dropped_by_the_home_router(two_homes) -> None:
    a, b, a_pub, b_pub = two_homes
    assert a_pub[0] == "203.0.113.1" and b_pub[0] == "203.0.113.2"
    for _ in range(3):
        a.sendto(b"hello", b_pub)
    assert got(b) == []


def test_coordinated_punching_opens_both_ways_and_expires_after_the_timeout(two_homes) -> None:
    a, b, a_pub, b_pub = two_homes
    for i in range(3):  # both start at once, a few tries each, as the path manager does
        a.sendto(b"a%d" % i, b_pub)
        b.sendto(b"b%d" % i, a_pub)
        time.sleep(0.02)
    assert got(a) and got(b)
    a.sendto(b"after", b_pub)
    b.sendto(b"after", a_pub)
    assert got(a) == [b"after"] and got(b) == [b"after"]
    time.sleep(TIMEOUT + 1.2)  # idle longer than the routers keep the mapping
    a.sendto(b"late", b_pub)
    assert got(b) == []


def test_no_hairpin_behind_one_router_but_the_lan_address_works() -> None:
    with Lab() as lab:
        inet, (r,) = nat_lab(lab, (2,), udp_timeout=TIMEOUT)
        ref = Reflector(inet, INTERNET_IP)
        h1, h2 = r.hosts
        a, c = sock_in(h1.ns, (h1.ip, 0)), sock_in(h2.ns, (h2.ip, 0))
        try:
            c_pub = public_address(c, ref.addr)
            public_address(a, ref.addr)
            assert c_pub[0] == r.wan_ip
            a.sendto(b"via public", c_pub)
            assert got(c) == []
            a.sendto(b"via lan", c.getsockname())
            assert got(c) == [b"via lan"]
        finally:
            a.close()
            c.close()
            ref.close()


def test_masquerade_random_gives_a_new_port_per_destination() -> None:
    with Lab() as lab:
        inet, (ra, rb) = nat_lab(lab, (1, 1), udp_timeout=TIMEOUT, random=True)
        ref1, ref2 = Reflector(inet, INTERNET_IP), Reflector(inet, INTERNET_IP)
        a = sock_in(ra.hosts[0].ns, (ra.hosts[0].ip, 0))
        b = sock_in(rb.hosts[0].ns, (rb.hosts[0].ip, 0))
        try:
            p1, p2 = public_address(a, ref1.addr), public_address(a, ref2.addr)
            assert p1[0] == p2[0] == ra.wan_ip
            assert p1[1] != p2[1]  # endpoint-dependent mapping: "symmetric NAT"
            b_pub = public_address(b, ref1.addr)
            for _ in range(3):  # punching toward the addresses the directory saw fails
                a.sendto(b"x", b_pub)
                b.sendto(b"y", p1)
                time.sleep(0.02)
            assert got(a) == [] and got(b) == []
        finally:
            for s in (a, b):
                s.close()
            ref1.close()
            ref2.close()


class Driver:
    """A PathManager driven over a plain UDP socket: probes are b"P" (answered with b"A"),
    keepalives b"K". Stands in for the engine until the engine is wired."""

    def __init__(self, sock: socket.socket, mgr: PathManager) -> None:
        self.sock, self.mgr = sock, mgr
        self.events: list[object] = []

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            step = self.mgr.poll(now)
            self.events += step.events
            for s in step.sends:
                self.sock.sendto(b"P" if isinstance(s, Probe) else b"K", s.addr)
            deadline = self.mgr.next_deadline()
            wait = min(end, deadline if deadline is not None else end) - time.monotonic()
            self.sock.settimeout(max(0.01, min(wait, 0.1)))
            try:
                data, src = self.sock.recvfrom(64)
            except TimeoutError:
                continue
            peers = self.mgr.peers_at(src)
            for peer in peers:
                self.mgr.heard(peer, src, time.monotonic(), user=data != b"K")
            if data == b"P" and peers:
                self.sock.sendto(b"A", src)


@pytest.mark.parametrize("keepalive", [True, False])
def test_path_managers_punch_through_two_routers_and_keepalives_hold_the_mapping(
        two_homes, keepalive: bool) -> None:
    a, b, a_pub, b_pub = two_homes
    cfg = PathConfig(first_retry=0.1, keepalive_interval=0.5, active_window=30)
    ma, mb = PathManager(cfg, behind_nat=keepalive), PathManager(cfg, behind_nat=keepalive)
    now = time.monotonic()
    ma.add_candidate("bob", b_pub, PathKind.DIRECT, now)
    mb.add_candidate("alice", a_pub, PathKind.DIRECT, now)
    da, db = Driver(a, ma), Driver(b, mb)
    ta = threading.Thread(target=da.run, args=(TIMEOUT + 2.5,))
    ta.start()
    db.run(TIMEOUT + 2.5)  # idle (keepalives only) for longer than the conntrack timeout
    ta.join()
    assert ma.path_of("bob").addr == b_pub and mb.path_of("alice").addr == a_pub
    assert not any(isinstance(e, PathLost) for e in da.events + db.events)
    a.sendto(b"still open", b_pub)
    # kept open by the keepalives -- and without them, forgotten by the routers
    assert (b"still open" in got(b)) is keepalive
