"""Reachability benchmark (issue 10): what reaching peers through NAT and on a LAN costs.

What it measures:

1. **Join to delivery across two NATs.** Two home routers (tests/nat.py: masquerade, WAN input
   closed, no hairpin, 2 s UDP timeouts), the directory server on the "internet" between them
   (1 s ping interval). alice runs behind router A; ``--joins`` times, bob starts behind router B
   (a fresh engine, same key), and the moment alice's engine reports him joined she sends him a
   private message. Figures: the time from **bob's registration** (his first PING announces
   him) to **bob receiving the message** (p50, p99; also from alice seeing the join), and the
   share of those first messages that needed no retransmission
   (the punch at join had opened both routers).
2. **Keepalive cost** at 200 peers, from the path manager itself (sans-IO, fake time): a client
   behind NAT talking with all 200 peers, and with 10 of them, over 10 simulated minutes.
3. **LAN discovery time for 50 peers**: 50 LAN discovery instances on one switch (10 hosts x 5);
   once they have settled, a newcomer starts, and we time until it has heard all 50 (target
   <= 2 s); also the time from the 50 starting together until all know each other.

How: ``sudo python tools/bench_reach.py`` (needs root, ``ip`` and ``nft``, like the netns
tests). ``--joins N`` (default 30). Prints a Markdown table (the README has one).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client import events as ev  # noqa: E402
from client.reach.lan import Identity, LanDiscovery  # noqa: E402
from client.reach.paths import Keepalive, PathConfig, PathKind, PathManager  # noqa: E402
from tests.nat import INTERNET_IP, Lab, in_netns, lab_unavailable, lan_lab, nat_lab  # noqa: E402
from tests.reachlab import LabEngine, LabServer  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def join_to_delivery(joins: int, tmp: Path) -> tuple[list[float], list[float], int]:
    os.environ["OPENLCHAT_NO_LAN"] = "1"
    lat: list[float] = []
    after_seen: list[float] = []
    clean = 0
    with Lab() as lab:
        inet, (ra, rb) = nat_lab(lab, (1, 1), udp_timeout=2)
        srv = LabServer(inet, INTERNET_IP, tmp / "dir.db", ping_interval=1.0).start()
        alice = LabEngine(ra.hosts[0].ns, srv.address, "alice", tmp / "alice")
        try:
            for i in range(joins):
                before = len(alice.of(ev.Joined))
                bob = LabEngine(rb.hosts[0].ns, srv.address, "bob", tmp / "bob", start=False)
                bob.run(lambda bob=bob: bob.engine.start(timeout=5))
                joined = time.perf_counter()  # registered: his first PING announces him
                while len(alice.of(ev.Joined)) == before:
                    time.sleep(0.001)
                seen = time.perf_counter()
                text = f"hello #{i}"
                alice.engine.send_private("bob", text)
                end = time.monotonic() + 10
                while not any(m.text == text for m in bob.of(ev.PrivateMessage)):
                    if time.monotonic() > end:
                        raise RuntimeError(f"message {i} not delivered")
                    time.sleep(0.001)
                lat.append(time.perf_counter() - joined)
                after_seen.append(time.perf_counter() - seen)
                if alice.engine._messenger.counters["retransmits"] == 0:
                    clean += 1
                alice.engine._messenger.counters["retransmits"] = 0
                bob.close()
                alice.wait_for(ev.Left, nickname="bob", timeout=10)
                alice.seen.clear()
        finally:
            alice.close()
            srv.kill()
    return lat, after_seen, clean


def keepalive_rate(peers: int, talking: int, minutes: float = 10.0, nat: bool = True) -> float:
    pm = PathManager(PathConfig(), behind_nat=nat)
    now = 0.0
    for i in range(peers):
        addr = (f"198.51.100.{i % 250 + 1}", 40000 + i)
        pm.add_candidate(f"p{i}", addr, PathKind.DIRECT, now)
        pm.heard(f"p{i}", addr, now, user=False)  # a path, but no conversation yet
    pm.poll(now)
    sent = 0
    end = minutes * 60
    step = 0.5
    while now < end:
        now += step
        if int(now) % 60 == 0 and now == int(now):  # a message to and from each talker a minute
            for i in range(talking):
                pm.sent(f"p{i}", now)
                pm.heard(f"p{i}", pm.path_of(f"p{i}").addr, now + 0.05)  # type: ignore[union-attr]
        sent += sum(isinstance(s, Keepalive) for s in pm.poll(now).sends)
    return sent / end


def lan_discovery(tmp: Path) -> tuple[float, float]:
    with Lab() as lab:
        hosts = lan_lab(lab, 11)
        found: dict[str, set[str]] = {}
        made: list[LanDiscovery] = []

        def make(ns: str, nick: str) -> LanDiscovery:
            found[nick] = set()

            def deliver(events: list, nick: str = nick) -> None:
                for e in events:
                    peer = getattr(e, "peer", None)
                    if peer is not None:
                        found[nick].add(peer.nickname)

            d = in_netns(ns, lambda: LanDiscovery(Identity(40000, nick, os.urandom(32)),
                                                  deliver).start())
            made.append(d)
            return d

        try:
            t0 = time.perf_counter()
            for h in range(10):
                for k in range(5):
                    make(hosts[h].ns, f"p{h}x{k}")
            everyone = set(found)
            while any(len(found[n]) < 49 for n in everyone) and time.perf_counter() - t0 < 30:
                time.sleep(0.01)
            all_known = time.perf_counter() - t0
            time.sleep(2.0)  # a settled LAN (right after the start-up storm, answers wait 0.5 s)
            t1 = time.perf_counter()
            make(hosts[10].ns, "newcomer")
            while len(found["newcomer"]) < 50 and time.perf_counter() - t1 < 30:
                time.sleep(0.005)
            newcomer = time.perf_counter() - t1
        finally:
            for d in made:
                d.close()
    return newcomer, all_known


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--joins", type=int, default=30)
    args = p.parse_args()
    why = lab_unavailable(nat=True)
    if why is not None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        lat, after_seen, clean = join_to_delivery(args.joins, Path(tmp))
        newcomer, all_known = lan_discovery(Path(tmp))
    ka_all, ka_some = keepalive_rate(200, 200), keepalive_rate(200, 10)
    print("| measure | result | target |")
    print("|---|---|---|")
    print(f"| join (registered) -> first message delivered across two NATs, p50 | "
          f"{pct(lat, 0.5) * 1000:.0f} ms | |")
    print(f"| same, p99 ({len(lat)} joins, 1 s ping interval) | {pct(lat, 0.99) * 1000:.0f} ms "
          f"| <= 1 s |")
    print(f"| of which: the sender saw the join -> delivered, p50 / p99 | "
          f"{pct(after_seen, 0.5) * 1000:.0f} / {pct(after_seen, 0.99) * 1000:.0f} ms | |")
    print(f"| first messages delivered without a retransmission | "
          f"{100 * clean / len(lat):.0f}% ({clean}/{len(lat)}) | |")
    print(f"| keepalives per client, 200 peers, talking with all | {ka_all:.1f} datagrams/s | |")
    print(f"| keepalives per client, 200 peers, talking with 10 | {ka_some:.2f} datagrams/s | |")
    print(f"| keepalives when not behind NAT | {keepalive_rate(200, 200, nat=False):.0f} | |")
    print(f"| LAN: a newcomer hears 50 peers | {newcomer * 1000:.0f} ms | <= 2 s |")
    print(f"| LAN: 50 peers starting together all know each other | {all_known * 1000:.0f} ms "
          f"| |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
