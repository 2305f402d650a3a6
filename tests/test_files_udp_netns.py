"""Files over the peers' UDP path in network namespaces (tests/nat.py): over a slow uplink
(``tbf``) the transfer fills the link while chat sent meanwhile stays quick; a receiver killed
with SIGKILL mid-transfer resumes after a restart and the file is byte-identical."""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import time
from pathlib import Path

import pytest

from client import events as ev
from client.engine import Engine
from tests.conftest import ServerProcess
from tests.nat import Lab, in_netns, lab_unavailable, lan_lab
from tests.netns import ClientProc

reason = lab_unavailable()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(reason is not None, reason=reason or ""),
              pytest.mark.timeout(90)]

RATE_MBIT = 20


class NsServer(ServerProcess):
    """``server.py`` inside a namespace, listening on ``host``."""

    def __init__(self, ns: str, host: str, db: Path) -> None:
        super().__init__(db, ping_interval=1.0)
        self.ns, self.host = ns, host

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *super().command()]


class NsNetwork:
    """Hosts h0 (the server), h1, h2 ... on one switch; h1's uplink shaped to RATE_MBIT."""

    def __init__(self, lab: Lab, tmp: Path, hosts: int = 3) -> None:
        self.lab, self.tmp = lab, tmp
        self.hosts = lan_lab(lab, hosts)
        self.server = NsServer(self.hosts[0].ns, self.hosts[0].ip, tmp / "dir.db").start()

    def shape(self, host: int) -> None:
        # a home uplink: tbf on the egress (netem is not available here); its queue may hold
        # 400 ms, so only the sender's congestion control keeps the chat's wait short
        self.lab.run(self.hosts[host].ns, ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                                           "rate", f"{RATE_MBIT}mbit", "burst", "32kbit",
                                           "latency", "400ms"])

    def engine(self, host: int, nick: str) -> Engine:
        def make() -> Engine:
            eng = Engine(self.server.address, nick, config_dir=self.tmp / nick,
                         bind=("0.0.0.0", 0))
            eng.start(timeout=5)
            eng.attach_files(self.tmp / f"{nick}-dl").settings.udp = "udp"
            return eng
        return in_netns(self.hosts[host].ns, make)

    def client(self, host: int, nick: str) -> ClientProc:
        h = self.hosts[host]
        return ClientProc(self.server.address, nick, self.tmp / nick, netns=InNs(h.ns),
                          extra=["--files-path", "udp", "--bind", h.ip])

    def close(self) -> None:
        self.server.kill()


def tid_of(line: str) -> str:
    found = re.search(r"#(\d+)", line)
    assert found is not None, line
    return found.group(1)


class InNs:
    """What ``ClientProc`` needs of a namespace: how to run a command in it."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]


class Timed:
    """An engine's events with the time each was taken off its queue (polled closely)."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        self.seen: list[tuple[float, object]] = []

    def wait(self, pred, timeout: float = 20.0) -> tuple[float, object]:
        end = time.monotonic() + timeout
        start = 0
        while True:
            for item in self.seen[start:]:
                if pred(item[1]):
                    return item
            start = len(self.seen)
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.eng.nickname}: nothing matching; saw "
                                     f"{[e for _t, e in self.seen][-10:]}")
            try:
                e = self.eng.events.get(timeout=min(left, 0.01))
            except Exception:
                continue
            self.seen.append((time.monotonic(), e))


@pytest.fixture
def net(tmp_path: Path):
    with Lab() as lab:
        n = NsNetwork(lab, tmp_path)
        try:
            yield n
        finally:
            n.close()


def test_a_slow_uplink_is_filled_and_the_chat_stays_quick(net: NsNetwork, tmp_path) -> None:
    net.shape(1)
    alice, bob = Timed(net.engine(1, "alice")), Timed(net.engine(2, "bob"))
    try:
        size = 8 << 20
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(size))
        end = time.monotonic() + 5
        while "bob" not in alice.eng.roster() and time.monotonic() < end:
            time.sleep(0.02)
        alice.eng.offer_files("bob", [src])
        _t, offer = bob.wait(lambda e: isinstance(e, ev.FileOffered))
        bob.eng.accept_file(offer.transfer_id)
        bob.wait(lambda e: isinstance(e, ev.FileProgress) and e.done > 0)
        started = time.monotonic()
        lags = []
        for i in range(40):     # chat from the same uplink while the file fills it
            t0 = time.monotonic()
            alice.eng.send_private("bob", f"ping {i}")
            t1, _m = bob.wait(lambda e, i=i: isinstance(e, ev.PrivateMessage)
                              and e.text == f"ping {i}")
            lags.append(t1 - t0)
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
        t_done, done = bob.wait(lambda e: isinstance(e, ev.FileDone | ev.FileFailed), 30)
        assert isinstance(done, ev.FileDone), done
        assert hashlib.sha256(done.path.read_bytes()).digest() == \
            hashlib.sha256(src.read_bytes()).digest()
        progress = [e for _t, e in bob.seen if isinstance(e, ev.FileProgress)]
        moved = size - progress[0].done
        rate = moved / (t_done - started) * 8 / 1e6
        lags.sort()
        p99 = lags[int(0.99 * (len(lags) - 1))]
        print(f"file {rate:.1f} Mbit/s of {RATE_MBIT}; chat p50 "
              f"{statistics.median(lags) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        assert rate >= 0.7 * RATE_MBIT
        assert p99 <= 0.3
    finally:
        alice.eng.close()
        bob.eng.close()


def test_a_receiver_killed_mid_transfer_resumes_after_restart(net: NsNetwork, tmp_path) -> None:
    net.shape(1)
    size = 6 << 20
    src = tmp_path / "holiday.mp4"
    data = os.urandom(size)
    src.write_bytes(data)
    alice = net.engine(1, "alice")
    bob = net.client(2, "bob")
    try:
        end = time.monotonic() + 5
        while "bob" not in alice.roster() and time.monotonic() < end:
            time.sleep(0.02)
        alice.offer_files("bob", [src])
        line = bob.expect(r"-!- alice offers file #(\d+): .*", 10)
        bob.send(f"/accept {tid_of(line)}")
        bob.expect(r"-!- file #\d+ holiday\.mp4 from alice: ([3-9]\d)% of .*", 15)
        bob.proc.kill()                         # SIGKILL mid-transfer
        bob.proc.wait(5)
        part = tmp_path / "bob" / "downloads" / "holiday.mp4.part"
        kept = part.stat().st_size
        assert 0 < kept < size and part.read_bytes() == data[:kept]
        bob = net.client(2, "bob")              # restarted: same config, same downloads
        end = time.monotonic() + 15
        while time.monotonic() < end:           # alice's failed stream, then a fresh offer
            try:
                alice.offer_files("bob", [src])
                line = bob.expect(r"-!- alice offers file #(\d+): .*", 3)
                break
            except (AssertionError, Exception):
                continue
        bob.send(f"/accept {tid_of(line)}")
        first = bob.expect(r"-!- file #\d+ holiday\.mp4 from alice: (\d+)% of .*", 15)
        assert int(re.search(r": (\d+)% of", first).group(1)) >= 100 * kept // size - 1
        saved = bob.expect(r"-!- file #\d+ holiday\.mp4 from alice saved as (.*)", 20)
        path = Path(re.search(r"saved as (.*)", saved).group(1))
        assert path.read_bytes() == data
        assert not part.exists()
    finally:
        alice.close()
        bob.kill()
