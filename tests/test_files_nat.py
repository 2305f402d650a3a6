"""Files and chat through emulated home routers (tests/nat.py, engines in network namespaces):
a file of a few MB between two peers behind two routers (over the UDP path: TCP gets into
neither) and between two behind one router (LAN); two peers behind strict NATs
(``masquerade random``) chat and send a file through ``server.py --relay``, shown "via relay",
and without a relay each is told plainly why the other cannot be reached; over a 20 Mbit/s
uplink (``tbf`` on router A's WAN port) a file fills the link while chat stays quick."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from client import events as ev
from tests.nat import INTERNET_IP, Lab, lab_unavailable, nat_lab
from tests.reachlab import LabEngine, LabServer

reason = lab_unavailable(nat=True)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or ""),
              pytest.mark.timeout(60)]


@pytest.fixture
def lab(request, tmp_path: Path):
    """(routers, server, made) for ``request.param`` = (homes, random NAT, server args, and
    whether router A's WAN port is shaped to 20 Mbit/s: tbf, its queue may hold 400 ms)."""
    shape, random, extra, shaped = getattr(request, "param", ((1, 1), False, (), False))
    made: list = []
    with Lab() as lab:
        inet, routers = nat_lab(lab, shape, udp_timeout=5, random=random)
        if shaped:
            lab.run(routers[0].ns, ["tc", "qdisc", "add", "dev", "wan", "root", "tbf", "rate",
                                    "20mbit", "burst", "32kbit", "latency", "400ms"])
        srv = LabServer(inet, INTERNET_IP, tmp_path / "dir.db", extra_args=tuple(extra))
        srv.start()
        try:
            yield routers, srv, made
        finally:
            for e in made:
                e.close()
            srv.kill()


def engine(made: list, host, srv, nick: str, tmp_path: Path, **kw):
    e = LabEngine(host.ns, srv.address, nick, tmp_path / nick, **kw)
    e.run(lambda: e.engine.attach_files(tmp_path / f"{nick}-dl"))
    made.append(e)
    return e


def pair(lab, tmp_path: Path):
    """alice behind router A and bob behind router B, each seeing the other listed."""
    (ra, rb), srv, made = lab
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path)
    bob = engine(made, rb.hosts[0], srv, "bob", tmp_path)
    alice.wait_roster(["bob"])
    bob.wait_roster(["alice"])
    return alice, bob


def send_file(alice, bob, tmp_path: Path, size: int) -> Path:
    data = os.urandom(size)
    src = tmp_path / "photos.zip"
    src.write_bytes(data)
    alice.engine.offer_files("bob", [src])
    offer = bob.wait_for(ev.FileOffered, timeout=10)
    bob.engine.accept_file(offer.transfer_id)
    bob.wait_until(lambda: bob.of(ev.FileDone) or bob.of(ev.FileFailed), "the file", 40)
    assert not bob.of(ev.FileFailed), bob.of(ev.FileFailed)
    (done,) = bob.of(ev.FileDone)
    assert hashlib.sha256(done.path.read_bytes()).digest() == hashlib.sha256(data).digest()
    alice.wait_for(ev.FileDone, timeout=10)
    return done.path


def test_a_file_between_two_homes_goes_over_the_udp_path(lab, tmp_path) -> None:
    alice, bob = pair(lab, tmp_path)
    alice.engine.send_private("bob", "a file for you")
    bob.wait_for(ev.PrivateMessage, text="a file for you")
    send_file(alice, bob, tmp_path, 4 << 20)
    assert alice.path("bob").startswith("direct through NAT")


@pytest.mark.parametrize("lab", [((2,), False, (), False)], indirect=True)
def test_a_file_between_two_behind_one_router(lab, tmp_path) -> None:
    (ra,), srv, made = lab
    alice = engine(made, ra.hosts[0], srv, "alice", tmp_path, lan=True)
    bob = engine(made, ra.hosts[1], srv, "bob", tmp_path, lan=True)
    alice.wait_until(lambda: alice.path("bob").startswith("LAN"), "a LAN path", 10)
    send_file(alice, bob, tmp_path, 4 << 20)


@pytest.mark.parametrize("lab", [((1, 1), True, ("--relay",), False)], indirect=True)
def test_strict_nats_chat_and_send_a_file_via_the_relay(lab, tmp_path) -> None:
    alice, bob = pair(lab, tmp_path)
    alice.wait_until(lambda: alice.path("bob").startswith("via relay"), "a relayed path", 15)
    alice.engine.send_private("bob", "through the relay")
    bob.wait_for(ev.PrivateMessage, text="through the relay")
    bob.engine.send_private("alice", "and back")
    alice.wait_for(ev.PrivateMessage, text="and back")
    send_file(alice, bob, tmp_path, 2 << 20)
    assert "via relay" in bob.path("alice")
    assert "relay to bob: ready" in alice.engine.netcheck()


@pytest.mark.parametrize("lab", [((1, 1), True, (), False)], indirect=True)
def test_strict_nats_without_a_relay_are_told_why(lab, tmp_path) -> None:
    alice, bob = pair(lab, tmp_path)
    why = alice.wait_for(ev.PeerUnreachable, timeout=15, nickname="bob")
    assert why.reason == "no direct path to bob: both behind strict NAT; the server does not relay"
    assert why.reason in alice.engine.netcheck()
    bob.wait_for(ev.PeerUnreachable, timeout=15, nickname="alice")


@pytest.mark.parametrize("lab", [((1, 1), False, (), True)], indirect=True)
def test_a_slow_uplink_is_filled_and_the_chat_stays_quick(lab, tmp_path) -> None:
    import time

    alice, bob = pair(lab, tmp_path)
    size = 8 << 20
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(size))
    alice.engine.offer_files("bob", [src])
    bob.engine.accept_file(bob.wait_for(ev.FileOffered, timeout=10).transfer_id)
    bob.wait_until(lambda: any(p.done > 0 for p in bob.of(ev.FileProgress)), "progress", 10)
    first = next(p for p in bob.of(ev.FileProgress) if p.done > 0)
    started = time.monotonic()
    lags = []
    for i in range(40):
        t0 = time.monotonic()
        alice.engine.send_private("bob", f"ping {i}")
        bob.wait_until(lambda i=i: any(m.text == f"ping {i}" for m in bob.of(ev.PrivateMessage)),
                       f"ping {i}", 5)
        lags.append(time.monotonic() - t0)
        time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
    bob.wait_until(lambda: bob.of(ev.FileDone) or bob.of(ev.FileFailed), "the file", 30)
    ended = time.monotonic()
    (done,) = bob.of(ev.FileDone)
    assert done.path.read_bytes() == src.read_bytes()
    rate = (size - first.done) / (ended - started) * 8 / 1e6
    lags.sort()
    p99 = lags[int(0.99 * (len(lags) - 1))]
    print(f"file {rate:.1f} Mbit/s of 20 through router A's WAN; chat p99 {p99 * 1000:.0f} ms")
    assert rate >= 0.7 * 20
    assert p99 <= 0.3
