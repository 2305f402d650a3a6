"""Decline, expiry, cancel from each side, a damaged stream, resume after a cut, fallbacks."""

from __future__ import annotations

import time
from pathlib import Path

from client.events import FileDone, FileFailed, FileOffered, FileProgress
from client.files import wire
from tests.test_files_support import Pair, Proxy, reroute_offers


def _offered(pair: Pair, src: Path) -> tuple[int, int]:
    (tid,) = pair.alice.ft.offer("bob", [src])
    ev = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered)
                                 and e.name == src.name and e.transfer_id not in _seen(pair))
    return tid, ev.transfer_id


def _seen(pair: Pair) -> set[int]:
    return {e.transfer_id for e in pair.bob.inbox.of(FileDone) + pair.bob.inbox.of(FileFailed)}


def _ended(side, tid: int, timeout: float = 10.0):
    return side.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed)
                               and e.transfer_id == tid, timeout)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_decline(pair: Pair) -> None:
    src, _ = pair.source("a.txt", 10)
    tid, rid = _offered(pair, src)
    pair.bob.ft.decline(rid)
    sent = _ended(pair.alice, tid)
    assert isinstance(sent, FileFailed) and "declined" in sent.reason and sent.outgoing
    got = _ended(pair.bob, rid)
    assert isinstance(got, FileFailed) and got.reason == "declined"
    assert _files(pair.root / "bob-dl") == []
    pair.bob.ft.accept(rid)                       # too late: nothing happens
    time.sleep(0.1)
    assert len(pair.alice.inbox.of(FileFailed)) == 1


def test_offers_expire_on_both_sides(pair: Pair) -> None:
    src, _ = pair.source("a.txt", 10)
    pair.alice.link.drop = True                   # bob never hears of it: both expire alone
    (tid,) = pair.alice.ft.offer("bob", [src])
    pair.alice.link.drop = False
    tid2, rid2 = _offered(pair, src)
    for side in (pair.alice, pair.bob):
        side.ft.tick(0.0)
        side.ft.tick(119.0)
    assert not pair.alice.inbox.of(FileFailed) and not pair.bob.inbox.of(FileFailed)
    for side in (pair.alice, pair.bob):
        side.ft.tick(120.0)
    assert _ended(pair.alice, tid).reason == "offer expired"
    assert _ended(pair.alice, tid2).reason == "offer expired"
    assert _ended(pair.bob, rid2).reason == "offer expired"
    pair.bob.ft.accept(rid2)                      # after expiry: ignored
    time.sleep(0.1)
    assert not pair.alice.inbox.of(FileDone) and not pair.bob.inbox.of(FileDone)


def test_late_accept_of_an_expired_offer_is_refused(pair: Pair) -> None:
    src, _ = pair.source("a.txt", 10)
    tid, rid = _offered(pair, src)
    pair.alice.ft.tick(0.0)
    pair.alice.link.drop = True                   # bob does not learn of the expiry
    pair.alice.ft.tick(500.0)
    pair.alice.link.drop = False
    pair.bob.ft.accept(rid)
    got = _ended(pair.bob, rid)
    assert isinstance(got, FileFailed) and "expired" in got.reason
    _wait_empty(pair.root / "bob-dl")             # the empty .part is removed


def _stalled_transfer(pair: Pair, size: int = 8 << 20):
    src, _ = pair.source("big.bin", size)
    proxy = Proxy(("127.0.0.1", pair.alice.ft.port), stall_after=3 << 20)
    reroute_offers(pair.alice.link, proxy.port)
    tid, rid = _offered(pair, src)
    pair.bob.ft.accept(rid)
    assert proxy.stalled.wait(10)
    pair.bob.inbox.wait_for(lambda e: isinstance(e, FileProgress))
    return proxy, tid, rid


def test_cancel_by_sender_mid_transfer(pair: Pair) -> None:
    proxy, tid, rid = _stalled_transfer(pair)
    try:
        pair.alice.ft.cancel(tid)
        assert _ended(pair.alice, tid).reason == "cancelled"
        got = _ended(pair.bob, rid)
        assert isinstance(got, FileFailed) and got.reason == "alice cancelled: cancelled"
    finally:
        proxy.close()
    _wait_empty(pair.root / "bob-dl")


def test_cancel_by_receiver_mid_transfer(pair: Pair) -> None:
    proxy, tid, rid = _stalled_transfer(pair)
    try:
        pair.bob.ft.cancel(rid)
        assert _ended(pair.bob, rid).reason == "cancelled"
        sent = _ended(pair.alice, tid)
        assert isinstance(sent, FileFailed) and sent.reason == "bob declined: cancelled"
    finally:
        proxy.close()
    _wait_empty(pair.root / "bob-dl")


def _wait_empty(folder: Path) -> None:
    deadline = time.monotonic() + 15
    while _files(folder) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _files(folder) == []


def test_flipped_byte_on_the_wire_is_detected(pair: Pair) -> None:
    src, _ = pair.source("x.bin", 2 << 20)
    proxy = Proxy(("127.0.0.1", pair.alice.ft.port), flip_at=1_000_000)
    reroute_offers(pair.alice.link, proxy.port)
    try:
        tid, rid = _offered(pair, src)
        pair.bob.ft.accept(rid)
        got = _ended(pair.bob, rid)
        assert isinstance(got, FileFailed) and "corrupted" in got.reason
        assert isinstance(_ended(pair.alice, tid), FileFailed)
    finally:
        proxy.close()
    assert "x.bin" not in _files(pair.root / "bob-dl")     # only the .part, never complete


def test_resume_after_the_stream_is_cut(pair: Pair) -> None:
    size = 10 << 20
    src, data = pair.source("movie.mkv", size)
    proxy = Proxy(("127.0.0.1", pair.alice.ft.port), cut_after=4 << 20)
    reroute_offers(pair.alice.link, proxy.port)
    try:
        tid, rid = _offered(pair, src)
        pair.bob.ft.accept(rid)
        got = _ended(pair.bob, rid)
        assert isinstance(got, FileFailed) and "connection" in got.reason
        assert isinstance(_ended(pair.alice, tid), FileFailed)
        part = pair.root / "bob-dl" / "movie.mkv.part"
        kept = part.stat().st_size
        assert 0 < kept < size and part.read_bytes() == data[:kept]
        assert (pair.root / "bob-dl" / "movie.mkv.part.json").exists()
        # The sender offers the same file again; the receiver resumes from the .part length.
        tid2, rid2 = _offered(pair, src)
        pair.bob.ft.accept(rid2)
        done = _ended(pair.bob, rid2, 30)
        assert isinstance(done, FileDone), done
        assert isinstance(_ended(pair.alice, tid2), FileDone)
    finally:
        proxy.close()
    assert done.path.read_bytes() == data
    assert _files(pair.root / "bob-dl") == ["movie.mkv"]
    assert proxy.down_bytes[1] < size - kept + 4096         # only the rest crossed the wire
    first = next(e for e in pair.bob.inbox.of(FileProgress) if e.transfer_id == rid2)
    assert first.done >= kept


def test_resume_with_a_different_prefix_starts_over(pair: Pair) -> None:
    size = 6 << 20
    src, data = pair.source("d.bin", size)
    proxy = Proxy(("127.0.0.1", pair.alice.ft.port), cut_after=3 << 20)
    reroute_offers(pair.alice.link, proxy.port)
    try:
        _, rid = _offered(pair, src)
        pair.bob.ft.accept(rid)
        assert isinstance(_ended(pair.bob, rid), FileFailed)
        part = pair.root / "bob-dl" / "d.bin.part"
        with open(part, "r+b") as f:                 # the partial file got damaged on disk
            f.write(b"\xff" * 10)
        _, rid2 = _offered(pair, src)
        pair.bob.ft.accept(rid2)
        done = _ended(pair.bob, rid2, 30)
    finally:
        proxy.close()
    assert isinstance(done, FileDone) and done.path.read_bytes() == data
    assert proxy.down_bytes[1] > size


def _dead_port() -> int:
    import socket
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()                                     # nobody listens there
    return port


def test_reverse_connection_when_the_sender_cannot_be_reached(pair: Pair) -> None:
    src, data = pair.source("r.bin", 300_000)
    reroute_offers(pair.alice.link, _dead_port())
    tid, rid = _offered(pair, src)
    pair.bob.ft.accept(rid)
    got = _ended(pair.bob, rid)
    assert isinstance(got, FileDone) and got.path.read_bytes() == data
    assert isinstance(_ended(pair.alice, tid), FileDone)
    kinds = [p[1] for p in pair.bob.link.sent]
    assert wire.REVERSE in kinds


def test_no_session_key_fails_cleanly(pair: Pair) -> None:
    pair.bob.key = None
    src, _ = pair.source("k.bin", 1000)
    tid, rid = _offered(pair, src)
    pair.bob.ft.accept(rid)
    got = _ended(pair.bob, rid)
    assert isinstance(got, FileFailed) and "encrypted session" in got.reason
    assert isinstance(_ended(pair.alice, tid), FileFailed)


def test_wrong_key_is_rejected(pair: Pair) -> None:
    pair.bob.key = bytes(32)
    src, _ = pair.source("k.bin", 1000)
    tid, rid = _offered(pair, src)
    pair.bob.ft.accept(rid)
    assert isinstance(_ended(pair.alice, tid), FileFailed)
    assert isinstance(_ended(pair.bob, rid), FileFailed)
    assert "k.bin" not in _files(pair.root / "bob-dl")


def test_not_enough_space_is_refused(pair: Pair) -> None:
    src, _ = pair.source("s.bin", 10)
    pair.bob.ft.settings.free_space_margin = 1 << 62          # pretend the disk is full
    tid, rid = _offered(pair, src)
    pair.bob.ft.accept(rid)
    got = _ended(pair.bob, rid)
    assert isinstance(got, FileFailed) and "free space" in got.reason
    assert "free space" in _ended(pair.alice, tid).reason
    assert not any(p[1] == wire.ACCEPT for p in pair.bob.link.sent)   # checked before accepting


def test_a_file_changed_after_the_offer_is_not_sent(pair: Pair) -> None:
    src, _ = pair.source("c.txt", 100)
    tid, rid = _offered(pair, src)
    src.write_bytes(b"something else entirely")
    pair.bob.ft.accept(rid)
    assert "changed" in _ended(pair.alice, tid).reason
    assert isinstance(_ended(pair.bob, rid), FileFailed)
    _wait_empty(pair.root / "bob-dl")


def test_peer_left_ends_waiting_offers_on_both_sides(pair: Pair) -> None:
    src, _ = pair.source("l.txt", 10)
    tid, rid = _offered(pair, src)
    pair.alice.ft.on_peer_left("bob")
    pair.bob.ft.on_peer_left("alice")
    assert _ended(pair.alice, tid).reason == "bob left"
    assert _ended(pair.bob, rid).reason == "alice left"


def test_undelivered_offer_and_accept_end_the_transfer(pair: Pair) -> None:
    src, _ = pair.source("u.txt", 10)
    pair.alice.link.drop = True
    (tid,) = pair.alice.ft.offer("bob", [src])
    pair.alice.ft.on_undelivered("bob", pair.alice.link.sent[-1])
    assert _ended(pair.alice, tid).reason == "bob did not answer"
    pair.alice.link.drop = False
    reroute_offers(pair.alice.link, _dead_port())        # bob cannot connect by himself
    tid2, rid2 = _offered(pair, src)
    pair.bob.link.drop = True
    pair.bob.ft.accept(rid2)
    deadline = time.monotonic() + 10          # the worker sends ACCEPT once space is checked
    while not any(p[1] == wire.ACCEPT for p in pair.bob.link.sent):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    accept = next(p for p in pair.bob.link.sent if p[1] == wire.ACCEPT)
    pair.bob.ft.on_undelivered("alice", accept)
    assert _ended(pair.bob, rid2).reason == "alice did not answer"
    pair.bob.ft.on_undelivered("alice", b"junk")            # ignored
