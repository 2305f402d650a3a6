"""Issue 6: idle or flooding TCP connections to the file listener must not stop transfers.

All test peers share 127.0.0.1, so the per-host cap alone is not what saves the transfer here:
eviction of the oldest pending connection and the receiver's retry / REVERSE fallback are.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from client.events import FileDone, FileFailed, FileOffered
from client.files import wire
from tests.test_files_support import Pair, reroute_offers


def _offered(pair: Pair, src: Path) -> tuple[int, int]:
    (tid,) = pair.alice.ft.offer("bob", [src])
    ev = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered) and e.name == src.name)
    return tid, ev.transfer_id


def _ended(side, tid: int, timeout: float = 15.0):
    return side.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed)
                               and e.transfer_id == tid, timeout)


def _is_closed(conn: socket.socket) -> bool:
    """Has the other side closed ``conn``? (without waiting)"""
    conn.setblocking(False)
    try:
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def _wait_closed(conn: socket.socket, timeout: float = 5.0) -> bool:
    conn.settimeout(timeout)
    try:
        return conn.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def _sent_kinds(link) -> list[int]:
    return [p[1] for p in link.sent]


class DropFirst:
    """A listener in front of ``target`` that closes its first ``drop`` connections at once
    (what a flooded listener's eviction looks like from outside) and forwards the rest."""

    def __init__(self, target: tuple[str, int], drop: int) -> None:
        self.target, self.drop = target, drop
        self.accepted = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.socks: list[socket.socket] = [self.lsock]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.drop:
                conn.close()
                continue
            up = socket.create_connection(self.target)
            self.socks += [conn, up]
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()


@pytest.mark.parametrize("per_host", [4, 64])
def test_idle_connections_do_not_lock_a_peer_out(pair: Pair, per_host: int) -> None:
    """The reviewer's reproduction: 40 idle connections, then a transfer. The newest connection
    evicts the oldest idle one (per host, or in all when the per-host cap is not the limit)."""
    alice = pair.alice.ft
    alice.settings.max_pending_per_host = per_host
    alice.settings.handshake_timeout = 30.0          # so only eviction can have closed them
    src, data = pair.source("f.bin", 1 << 20)
    tid, rid = _offered(pair, src)          # connections are kept only while a transfer waits
    idle = [socket.create_connection(("127.0.0.1", alice.port), timeout=5) for _ in range(40)]
    try:
        pair.bob.ft.accept(rid)
        got = _ended(pair.bob, rid)
        assert isinstance(got, FileDone), got
        assert got.path.read_bytes() == data
        assert isinstance(_ended(pair.alice, tid), FileDone)
        assert wire.REVERSE not in _sent_kinds(pair.bob.link)   # the newest is never evicted
        still_open = [c for c in idle if not _is_closed(c)]
        # the table held min(per_host, 32) of them; bob's connection evicted one more
        assert len(still_open) == min(per_host, alice.settings.max_pending_connections) - 1
        assert still_open == idle[-len(still_open):]            # the oldest went first
    finally:
        for c in idle:
            c.close()


def test_a_continuous_flood_does_not_stop_a_transfer(pair: Pair) -> None:
    """Connections keep coming while bob connects: even if his are evicted before their
    preamble is read, he retries and then asks alice to connect to him (REVERSE)."""
    alice = pair.alice.ft
    src, data = pair.source("g.bin", 1 << 20)
    tid, rid = _offered(pair, src)
    stop = threading.Event()
    opened = [0]

    def flood() -> None:
        held: list[socket.socket] = []
        while not stop.is_set() and opened[0] < 3000:
            with contextlib.suppress(OSError):
                held.append(socket.create_connection(("127.0.0.1", alice.port), timeout=2))
                opened[0] += 1
            while len(held) > 64:       # bound our own descriptors
                held.pop(0).close()
        for c in held:
            c.close()

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        while opened[0] < 50:
            time.sleep(0.01)
        pair.bob.ft.accept(rid)
        got = _ended(pair.bob, rid, 30)
        assert isinstance(got, FileDone), got
        assert got.path.read_bytes() == data
        assert isinstance(_ended(pair.alice, tid, 30), FileDone)
    finally:
        stop.set()
        flooder.join(10)


def test_connections_are_dropped_at_once_when_no_transfer_waits(pair: Pair) -> None:
    conns = [socket.create_connection(("127.0.0.1", pair.alice.ft.port), timeout=5)
             for _ in range(40)]
    try:
        assert all(_wait_closed(c) for c in conns)
    finally:
        for c in conns:
            c.close()


def test_per_host_cap_evicts_that_hosts_oldest(pair: Pair) -> None:
    alice = pair.alice.ft
    alice.settings.handshake_timeout = 30.0
    src, _ = pair.source("h.bin", 10)
    _offered(pair, src)
    conns = [socket.create_connection(("127.0.0.1", alice.port), timeout=5) for _ in range(10)]
    try:
        assert all(_wait_closed(c) for c in conns[:6])
        time.sleep(0.1)
        assert not any(_is_closed(c) for c in conns[6:])
    finally:
        for c in conns:
            c.close()


def test_a_silent_connection_is_closed_after_the_preamble_timeout(pair: Pair) -> None:
    alice = pair.alice.ft
    alice.settings.handshake_timeout = 0.3
    src, _ = pair.source("t.bin", 10)
    _offered(pair, src)
    with socket.create_connection(("127.0.0.1", alice.port), timeout=5) as c:
        t0 = time.monotonic()
        assert _wait_closed(c)
        assert 0.2 <= time.monotonic() - t0 < 3.0


def test_a_split_preamble_then_a_drop_leaves_the_offer_waiting(pair: Pair) -> None:
    """A preamble may come in pieces; a receiver connection that breaks before its stream
    header puts the transfer back to waiting, and the real connection then works."""
    src, data = pair.source("s.bin", 5000)
    tid, rid = _offered(pair, src)
    token = wire.decode_control(pair.alice.link.sent[-1]).token
    preamble = wire.encode_preamble(wire.ROLE_RECEIVER, token)
    with socket.create_connection(("127.0.0.1", pair.alice.ft.port), timeout=5) as c:
        c.sendall(preamble[:7])
        time.sleep(0.1)
        c.sendall(preamble[7:])
        deadline = time.monotonic() + 5
        while pair.alice.ft.control.by_id[tid].state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.01)
    deadline = time.monotonic() + 5          # we closed it without a hello: waiting again
    while pair.alice.ft.control.by_id[tid].state != "accepted":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert pair.alice.inbox.events == []
    pair.bob.ft.accept(rid)
    got = _ended(pair.bob, rid)
    assert isinstance(got, FileDone) and got.path.read_bytes() == data
    assert isinstance(_ended(pair.alice, tid), FileDone)


@pytest.mark.parametrize("drop,reverse", [(1, False), (2, True)])
def test_receiver_retries_then_falls_back_to_reverse(pair: Pair, drop: int,
                                                     reverse: bool) -> None:
    """Bob's connections are closed before the stream starts: once -> his second try works;
    twice -> he sends REVERSE and alice connects to him."""
    front = DropFirst(("127.0.0.1", pair.alice.ft.port), drop)
    reroute_offers(pair.alice.link, front.port)
    try:
        src, data = pair.source("r.bin", 200_000)
        tid, rid = _offered(pair, src)
        pair.bob.ft.accept(rid)
        got = _ended(pair.bob, rid)
        assert isinstance(got, FileDone), got
        assert got.path.read_bytes() == data
        assert isinstance(_ended(pair.alice, tid), FileDone)
        assert (wire.REVERSE in _sent_kinds(pair.bob.link)) == reverse
        assert front.accepted == 2                  # two direct tries, never a third
    finally:
        front.close()


def test_sender_connecting_back_retries_once(pair: Pair) -> None:
    """REVERSE into a listener that drops alice's first connection: she tries once more."""
    front = DropFirst(("127.0.0.1", pair.bob.ft.port), 1)
    dead = socket.create_server(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    reroute_offers(pair.alice.link, dead_port)          # bob cannot reach alice

    def reverse_via_front(payload: bytes) -> bytes:
        msg = wire.decode_control(payload)
        if isinstance(msg, wire.Reverse):
            return wire.encode_control(wire.Reverse(msg.token, front.port))
        return payload
    pair.bob.link.transform = reverse_via_front
    try:
        src, data = pair.source("b.bin", 200_000)
        tid, rid = _offered(pair, src)
        pair.bob.ft.accept(rid)
        got = _ended(pair.bob, rid)
        assert isinstance(got, FileDone), got
        assert got.path.read_bytes() == data
        assert isinstance(_ended(pair.alice, tid), FileDone)
        assert front.accepted == 2
    finally:
        front.close()


def _can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _can_bind("127.0.0.2"), reason="needs 127.0.0.2 (Linux loopback /8)")
def test_a_full_table_evicts_strangers_before_peer_hosts(pair: Pair) -> None:
    """bob's host is 127.0.0.1 (the roster address); a stranger floods from 127.0.0.2."""
    alice = pair.alice.ft
    alice.settings.handshake_timeout = 30.0
    alice.settings.max_pending_per_host = 64            # so the total (32) is what fills up
    src, _ = pair.source("p.bin", 10)
    _offered(pair, src)
    peer = socket.create_connection(("127.0.0.1", alice.port), timeout=5)   # oldest, silent
    strangers = [socket.create_connection(("127.0.0.1", alice.port), timeout=5,
                                          source_address=("127.0.0.2", 0)) for _ in range(40)]
    try:
        assert all(_wait_closed(c) for c in strangers[:9])      # 1 + 40 - 32 evicted
        time.sleep(0.1)
        assert not _is_closed(peer)
        assert not any(_is_closed(c) for c in strangers[9:])
    finally:
        for c in (peer, *strangers):
            c.close()
