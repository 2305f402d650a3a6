"""The relay across strict NATs (tests/nat.py, ``masquerade random`` on both routers): two
clients that no direct path joins get a pair from ``server.py --relay`` and exchange datagrams
through it, both ways, byte for byte; a stranger on the internet gets nothing through it; a
server without ``--relay`` says "off". Directory clients made of plain sockets in the
namespaces (the engine's use of the relay rides on the path manager)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from client.serverlink.registration import register
from models import directory_wire as wire
from models import relay_wire as rw
from models.errors import ProtocolError
from tests.nat import INTERNET_IP, Lab, in_netns, lab_unavailable, nat_lab, udp_socket
from tests.test_files_udp_netns import NsServer

reason = lab_unavailable(nat=True)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or ""),
              pytest.mark.timeout(60)]


class NatClient:
    """A registered directory client in a namespace behind a router."""

    def __init__(self, ns: str, ip: str, server: tuple[str, int], nick: str) -> None:
        self.nick, self.server = nick, server
        self.sock = udp_socket(ns, (ip, 0), timeout=0.5)
        enrollment = in_netns(ns, lambda: register(server, nick, timeout=5))
        self.keyword = enrollment.keyword
        self.listed = {n: (h, p) for n, h, p in enrollment.roster}
        self.ping()

    def ping(self) -> None:
        self.sock.sendto(wire.encode_datagram(wire.Ping(self.keyword, self.nick, None)),
                         self.server)

    def ask(self, target: str) -> None:
        self.sock.sendto(rw.encode(rw.RelayRequest(self.keyword, self.nick, target)),
                         self.server)

    def take(self, wait: float = 1.0, want: object = None) -> list:
        """Relay messages (decoded) and relayed data (bytes) received within ``wait`` (or
        until ``want`` arrives)."""
        out: list = []
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _src = self.sock.recvfrom(4096)
            except (TimeoutError, BlockingIOError):
                break
            if rw.is_data(data):
                out.append(data)
                if data == want:
                    break
            elif rw.is_relay(data):
                with contextlib.suppress(ProtocolError):
                    out.append(rw.decode(data))
                    if out[-1] == want or want is rw.RelayReady and isinstance(out[-1], want):
                        break
        return out


@pytest.fixture
def strict(tmp_path: Path):
    """(lab, internet ns, alice's host, bob's host) behind two symmetric NATs."""
    with Lab() as lab:
        inet, (ra, rb) = nat_lab(lab, (1, 1), udp_timeout=5, random=True)
        yield lab, inet, ra.hosts[0], rb.hosts[0]


def _server(inet: str, tmp: Path, *extra: str) -> NsServer:
    srv = NsServer(inet, INTERNET_IP, tmp / "dir.db")
    srv.ping_interval = 10.0
    srv.extra_args = tuple(extra)
    return srv.start()


def test_two_peers_behind_strict_nats_talk_through_the_relay(strict, tmp_path) -> None:
    lab, inet, ha, hb = strict
    srv = _server(inet, tmp_path, "--relay", "--relay-rate", "100000")
    stranger = udp_socket(inet, (INTERNET_IP, 0))
    try:
        bob = NatClient(hb.ns, hb.ip, srv.address, "bob")
        time.sleep(0.3)     # bob's PING has given the directory his (NATed) address
        alice = NatClient(ha.ns, ha.ip, srv.address, "alice")
        time.sleep(0.3)
        # no direct path: each NAT gives every destination another port, so what the
        # directory lists (the port toward the server) is not what the other peer could use
        bob_at = alice.listed["bob"]
        alice_at = in_netns(hb.ns, lambda: register(srv.address, "carol", timeout=5)).roster
        alice_at = next((h, p) for n, h, p in alice_at if n == "alice")
        for _ in range(3):      # both punch toward each other at once
            alice.sock.sendto(b"\xc1hello", bob_at)
            bob.sock.sendto(b"\xc1hello", alice_at)
        for peer in (alice, bob):
            peer.sock.settimeout(0.5)
            with pytest.raises((TimeoutError, BlockingIOError)):
                while True:
                    data, _ = peer.sock.recvfrom(4096)
                    assert data != b"\xc1hello"

        alice.ask("bob")
        invite = rw.RelayInvite(bob.keyword, "alice")
        assert invite in bob.take(want=invite)
        bob.ask("alice")
        (ready,) = [m for m in alice.take(want=rw.RelayReady) if isinstance(m, rw.RelayReady)]
        datagram = rw.wrap(ready.pair, b"\xc1\x01\x20" + bytes(range(200)) * 5)
        alice.sock.sendto(datagram, srv.address)
        assert datagram in bob.take(want=datagram)
        back = rw.wrap(ready.pair, b"\xc1\x01\x20" + b"from bob")
        bob.sock.sendto(back, srv.address)
        assert back in alice.take(want=back)

        # a stranger with the pair id, and a request under no registration: nothing
        stranger.sendto(datagram, srv.address)
        stranger.sendto(rw.encode(rw.RelayRequest("forged", "eve", "bob")), srv.address)
        assert [m for m in bob.take(0.5) if isinstance(m, bytes)] == []
        stranger.settimeout(0.3)
        with pytest.raises((TimeoutError, BlockingIOError)):
            stranger.recvfrom(4096)
        # over the cap (100 kB/s, one second banked): the rest is dropped, and the server
        # never sent more than it received
        for _ in range(300):
            alice.sock.sendto(datagram, srv.address)
        relayed = [m for m in bob.take(0.6) if isinstance(m, bytes)]
        assert 60 <= len(relayed) <= 110
    finally:
        stranger.close()
        srv.stop()
    stats = srv.wait_for_log(r"stopping: stats", timeout=5)
    assert stats is not None and "relay_pairs=1" in stats


def test_without_relay_the_server_says_so_across_strict_nats(strict, tmp_path) -> None:
    _lab, inet, ha, hb = strict
    srv = _server(inet, tmp_path)
    try:
        alice = NatClient(ha.ns, ha.ip, srv.address, "alice")
        NatClient(hb.ns, hb.ip, srv.address, "bob")
        alice.ask("bob")
        off = rw.RelayRefused(alice.keyword, "bob", "off")
        assert off in alice.take(want=off)
    finally:
        srv.stop()
