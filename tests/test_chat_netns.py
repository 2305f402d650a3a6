"""Issue 11 in a throw-away network namespace (root, ``ip`` needed): a sniffer on ``lo`` shows
that a channel message goes only to the channel's members, never to a non-member."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.netns import REPO, client_env, netns_unavailable
from tests.test_e2e_netns import lab, port_of  # noqa: F401 - lab is a fixture

reason = netns_unavailable()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or "")]

BURST = 10


def test_sniffer_sees_no_channel_datagram_to_a_non_member(lab):  # noqa: F811
    ns, srv, start = lab
    alice, bob, carol = start("alice"), start("bob"), start("carol")
    for c in (alice, bob):
        c.expect("-!- carol joined", timeout=10)
    alice.send("/join #games")
    alice.expect("-!- alice joined #games")
    bob.send("/join #games")
    alice.expect("-!- bob joined #games", timeout=10)
    alice.send("/msg #room everyone hears this")  # carol too: her session with alice is up
    carol.expect("<alice> everyone hears this", timeout=10)
    ports = {n: port_of(alice, n) for n in ("bob", "carol")}
    ports["alice"] = port_of(bob, "alice")
    time.sleep(1.0)  # acknowledgements settle

    sniffer = subprocess.Popen(ns.wrap([sys.executable, str(REPO / "tests" / "netns.py"),
                                        "sniff", "30"]), stdout=subprocess.PIPE, text=True,
                               env=client_env())
    try:
        assert sniffer.stdout.readline().strip() == "ready"
        for i in range(BURST):
            alice.send(f"members only {i}")
        for i in range(BURST):
            bob.expect(rf"\[#games\] <alice> members only {i}", timeout=10)
        time.sleep(0.3)
    finally:
        sniffer.terminate()
        out, _ = sniffer.communicate(timeout=10)
    flows: dict[tuple[int, int], int] = {}
    for line in out.splitlines():
        sport, dport, hexdata = line.split(" ")
        if bytes.fromhex(hexdata)[:1] == b"\xc1":  # peer datagrams (the directory's are text)
            flows[(int(sport), int(dport))] = flows.get((int(sport), int(dport)), 0) + 1
    assert flows.get((ports["alice"], ports["bob"]), 0) >= BURST, flows
    assert flows.get((ports["alice"], ports["carol"]), 0) == 0, flows
    assert flows.get((ports["carol"], ports["alice"]), 0) == 0, flows
    assert not [x for x in carol.drain(0.2) if "members only" in x]
