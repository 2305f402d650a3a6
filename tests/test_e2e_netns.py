"""End to end inside throw-away network namespaces (root, ``ip`` and ``nft`` needed):
a lossy network (20% of UDP datagrams dropped in each direction by an nftables rule), and a
sniffer on ``lo`` that must see no message text and no nickname in peer datagrams."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.netns import REPO, ClientProc, Netns, client_env, netns_unavailable

reason = netns_unavailable()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or "")]


class NetnsServer(ServerProcess):
    def __init__(self, netns: Netns, db_path: Path, ping_interval: float) -> None:
        super().__init__(db_path, ping_interval)
        self.netns = netns

    def command(self) -> list[str]:
        return self.netns.wrap(super().command())


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest):
    """(netns, server, start_client) for a namespace with ``request.param`` percent loss."""
    loss = getattr(request, "param", 0)
    procs: list[ClientProc] = []
    with Netns(loss_percent=loss) as ns:
        srv = NetnsServer(ns, tmp_path / "dir.db", 1.0).start()

        def start(nick: str) -> ClientProc:
            c = ClientProc(srv.address, nick, tmp_path / nick, netns=ns)
            procs.append(c)
            c.expect(r"-!- registered as .*", timeout=20)
            return c

        try:
            yield ns, srv, start
        finally:
            for c in procs:
                c.kill()
            srv.kill()


def wait_all(c: ClientProc, want: set[str], timeout: float) -> None:
    """Until every line of ``want`` was printed (in any interleaving)."""
    end = time.monotonic() + timeout
    while not want <= set(c.seen):
        assert time.monotonic() < end, f"{c.nick} is missing {sorted(want - set(c.seen))[:5]}"
        c.drain(0.05)


def port_of(asker: ClientProc, nick: str) -> int:
    asker.send(f"/whois {nick}")
    line = asker.expect(rf"-!- {nick} at 127\.0\.0\.1:\d+: .*", timeout=10)
    return int(re.search(r":(\d+):", line).group(1))


@pytest.mark.parametrize("lab", [20], indirect=True)
def test_lossy_network_every_message_once_in_order(lab):
    ns, _srv, start = lab
    alice, bob, carol = start("alice"), start("bob"), start("carol")
    everyone = (alice, bob, carol)
    for c in everyone:
        others = {x.nick for x in everyone} - {c.nick}
        c.send("/who")
        deadline = time.monotonic() + 15
        while True:  # REF_ADDs may be lost too: wait until the repair has everyone listed
            line = c.expect(r"-!- online \(\d\): .*", timeout=15)
            if all(n in line for n in others):
                break
            assert time.monotonic() < deadline, line
            time.sleep(0.3)
            c.send("/who")
    count = 15
    for i in range(count):
        for c in everyone:
            c.send(f"{c.nick} says {i}")
        alice.send(f"/msg bob private {i}")
    for c in everyone:
        want = {f"<{s.nick}> {s.nick} says {i}" for s in everyone if s is not c
                for i in range(count)}
        if c is bob:
            want |= {f"*alice* private {i}" for i in range(count)}
        wait_all(c, want, timeout=30)
    time.sleep(1.0)  # any duplicate would show up by now
    for c in everyone:
        c.drain()
        said = [x for x in c.seen if re.fullmatch(r"<\w+> \w+ says \d+", x)]
        for sender in everyone:
            if sender is not c:
                mine = [x for x in said if x.startswith(f"<{sender.nick}>")]
                assert mine == [f"<{sender.nick}> {sender.nick} says {i}" for i in range(count)]
        assert not [x for x in c.seen if x.startswith("-!- not delivered")]
        # hurried PINGs while a PONG is overdue: 20% loss never looks like a lost server
        assert "-!- server unreachable, peers still reachable" not in c.seen
    assert [x for x in bob.seen if x.startswith("*alice*")] == [
        f"*alice* private {i}" for i in range(count)]
    assert not [x for x in carol.seen if "private" in x]
    assert ns.dropped() >= 20  # the network really was lossy


def test_sniffer_sees_no_text_and_no_nickname(lab, tmp_path):
    ns, srv, start = lab
    sniffer = subprocess.Popen(ns.wrap([sys.executable, str(REPO / "tests" / "netns.py"),
                                        "sniff", "60"]), stdout=subprocess.PIPE, text=True,
                               env=client_env())
    try:
        assert sniffer.stdout.readline().strip() == "ready"
        alice, bob = start("alice"), start("bobby")
        alice.expect("-!- bobby joined", timeout=10)
        secret = "TOP SECRET the eagle lands at dawn"
        alice.send(secret)
        bob.expect(f"<alice> {secret}")
        bob.send("/msg alice hush hush 12345")
        alice.expect(r"\*bobby\* hush hush 12345")
        alice_port, bob_port = port_of(bob, "alice"), port_of(alice, "bobby")
        time.sleep(0.3)
    finally:
        sniffer.terminate()
        out, _ = sniffer.communicate(timeout=10)
    captured = []
    for line in out.splitlines():
        sport, dport, hexdata = line.split(" ")
        captured.append((int(sport), int(dport), bytes.fromhex(hexdata)))
    peer = [c for c in captured if c[2][:1] == b"\xc1"]
    directory = [c for c in captured if c[2][:1] != b"\xc1"]
    between = {(alice_port, bob_port), (bob_port, alice_port)}
    assert len([c for c in peer if (c[0], c[1]) in between]) >= 4, captured
    # sanity: the sniffer does see clear text where there is some (the directory's datagrams)
    assert any(b"alice" in c[2] for c in directory)
    for needle in (b"TOP SECRET", b"eagle", b"hush", b"12345", b"alice", b"bobby",
                   "alice".encode("utf-16-le"), "bobby".encode("utf-16-le")):
        assert not [c for c in peer if needle in c[2]], needle

    # a datagram alice really sent, replayed from another address: bob ignores it
    sealed = [c[2] for c in peer if (c[0], c[1]) == (alice_port, bob_port) and c[2][2] == 0x20]
    assert sealed
    code = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for h in sys.argv[2:]: s.sendto(bytes.fromhex(h), ('127.0.0.1', int(sys.argv[1])))\n")
    subprocess.run(ns.wrap([sys.executable, "-c", code, str(bob_port),
                            *[d.hex() for d in sealed]]), check=True)
    time.sleep(0.5)
    bob.drain()
    assert [x for x in bob.seen if x.startswith("<alice>")] == [f"<alice> {secret}"]
