"""The NAT lab itself (tests/nat.py), proven with plain UDP sockets before any engine uses it:
home routers drop unsolicited UDP, coordinated punching opens a path, the mapping expires after
the conntrack timeout, a router does not hairpin, and ``masquerade random`` is a symmetric NAT."""

from __future__ import annotations

import socket
import time

import pytest

from tests.nat import INTERNET_IP, Lab, Reflector, lab_unavailable, nat_lab, public_address
from tests.nat import udp_socket as sock_in

reason = lab_unavailable()
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
