"""Hostile offers and control messages, several transfers at once, a responsive manager."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from client.events import FileDone, FileFailed, FileOffered
from client.files import wire
from tests.test_files_support import Pair


def _rename_offers(pair: Pair, evil: str) -> None:
    def rewrite(payload: bytes) -> bytes:
        msg = wire.decode_control(payload)
        if isinstance(msg, wire.Offer):
            return wire.encode_control(wire.Offer(msg.token, evil, msg.size, msg.mtime_ns,
                                                  msg.port))
        return payload
    pair.alice.link.transform = rewrite


@pytest.mark.parametrize("evil,saved", [
    ("../x", "x"),
    ("../../../../../../tmp/evil", "evil"),
    ("/etc/passwd", "passwd"),
    ("C:\\Windows\\x", "x"),
    ("CON.txt", "_CON.txt"),
    ("..", "file"),
    ("a/..", "file"),
    ("x.txt.", "x.txt"),
])
def test_malicious_names_are_saved_inside_downloads(pair: Pair, evil: str, saved: str) -> None:
    src = pair.root / "src" / "innocent.txt"
    src.parent.mkdir()
    src.write_bytes(b"payload")
    _rename_offers(pair, evil)
    pair.alice.ft.offer("bob", [src])
    offered = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered))
    assert offered.name == saved
    pair.bob.ft.accept(offered.transfer_id)
    done = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed))
    assert isinstance(done, FileDone), done
    downloads = (pair.root / "bob-dl").resolve()
    assert done.path.resolve().parent == downloads and done.path.name == saved
    assert done.path.read_bytes() == b"payload"
    # nothing written anywhere else under the test root
    written = {p.resolve() for p in pair.root.rglob("*") if p.is_file()}
    assert written == {src.resolve(), done.path.resolve()}


def test_garbage_control_messages_change_nothing(pair: Pair) -> None:
    ft = pair.bob.ft
    for junk in (b"", b"F", b"Fxx", b"F\x01" + bytes(16), os.urandom(5000),
                 b"F\x02" + os.urandom(16), b"F\x03" + os.urandom(16) + b"\x00",
                 b"F\x04" + os.urandom(16) + b"\x00", b"F\x05" + os.urandom(16) + b"\x00\x01",
                 b"F\x09" + bytes(40)):
        ft.on_control("mallory", junk)
    assert pair.bob.inbox.events == [] and ft.control.by_id == {}


def test_offer_flood_is_capped(pair: Pair) -> None:
    ft = pair.bob.ft
    for i in range(ft.settings.max_offers_per_peer + 20):
        ft.on_control("mallory", wire.encode_control(
            wire.Offer(os.urandom(16), f"f{i}", 1, 0, 1)))
    assert len(ft.control.by_id) == ft.settings.max_offers_per_peer
    assert len(pair.bob.inbox.events) == ft.settings.max_offers_per_peer
    declines = [wire.decode_control(p) for p in pair.bob.link.sent]
    assert len(declines) == 20 and all(isinstance(d, wire.Decline) for d in declines)


def test_a_peer_cannot_touch_another_peers_transfer(pair: Pair) -> None:
    src = pair.root / "a.bin"
    src.write_bytes(b"x")
    (tid,) = pair.alice.ft.offer("bob", [src])
    token = wire.decode_control(pair.alice.link.sent[0]).token
    pair.alice.ft.on_control("mallory", wire.encode_control(wire.Decline(token, "ha")))
    pair.alice.ft.on_control("mallory", wire.encode_control(wire.Accept(token)))
    time.sleep(0.05)
    assert pair.alice.inbox.events == []
    assert pair.alice.ft.control.by_id[tid].state == "offered"


def test_connections_for_unknown_transfers_are_dropped(pair: Pair) -> None:
    import socket
    for data in (b"GET / HTTP/1.0\r\n\r\n" + bytes(10), wire.encode_preamble(b"R", bytes(16))):
        with socket.create_connection(("127.0.0.1", pair.alice.ft.port), timeout=5) as c:
            c.sendall(data)
            # closed on us with nothing sent (an RST when our junk was left unread)
            with contextlib.suppress(ConnectionResetError):
                assert c.recv(10) == b""
    assert pair.alice.inbox.events == []


def test_several_transfers_at_once_and_the_manager_stays_responsive(pair: Pair) -> None:
    srcdir = pair.root / "src"
    srcdir.mkdir()
    datas = {}
    for i in range(5):
        datas[f"f{i}.bin"] = os.urandom((i + 1) * (3 << 20))
        (srcdir / f"f{i}.bin").write_bytes(datas[f"f{i}.bin"])
    ids = pair.alice.ft.offer("bob", sorted(srcdir.iterdir()))
    assert len(ids) == 5 and len(set(ids)) == 5
    deadline = time.monotonic() + 10
    while len(pair.bob.inbox.of(FileOffered)) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    worst = 0.0
    for ev in pair.bob.inbox.of(FileOffered):
        t0 = time.perf_counter()
        pair.bob.ft.accept(ev.transfer_id)
        worst = max(worst, time.perf_counter() - t0)
    # while they run, the engine-facing calls return at once (the chat keeps flowing)
    for _ in range(50):
        t0 = time.perf_counter()
        pair.bob.ft.on_control("carol", b"F\x02" + bytes(16))
        pair.bob.ft.tick(time.monotonic())
        worst = max(worst, time.perf_counter() - t0)
    assert worst < 0.5          # only GIL waits; nothing waits for the network or the disk
    deadline = time.monotonic() + 30
    while len(pair.bob.inbox.of(FileDone)) < 5 and time.monotonic() < deadline:
        assert not pair.bob.inbox.of(FileFailed)
        time.sleep(0.02)
    done = pair.bob.inbox.of(FileDone)
    assert sorted(d.path.name for d in done) == sorted(datas)
    for d in done:
        assert d.path.read_bytes() == datas[d.path.name]
    assert len(pair.alice.inbox.of(FileDone)) == 5


def test_offer_of_a_missing_file_raises(pair: Pair) -> None:
    with pytest.raises(OSError):
        pair.alice.ft.offer("bob", [pair.root / "nope"])
    with pytest.raises(ValueError):
        pair.alice.ft.offer("bob", [pair.root])
    assert pair.alice.link.sent == []


def test_connection_overtaking_the_accept_message_still_works(pair: Pair) -> None:
    src = pair.root / "o.bin"
    src.write_bytes(b"overtaken")
    real = pair.b_link.transform
    held: list[bytes] = []

    def hold_accepts(payload: bytes) -> bytes:
        if payload[1] == wire.ACCEPT:
            held.append(payload)
            return b"F\x02" + bytes(16)          # an ACCEPT for nothing: the real one is late
        return payload if real is None else real(payload)
    pair.b_link.transform = hold_accepts
    (tid,) = pair.alice.ft.offer("bob", [src])
    ev = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered))
    pair.bob.ft.accept(ev.transfer_id)
    done = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed))
    assert isinstance(done, FileDone) and done.path.read_bytes() == b"overtaken"
    pair.alice.ft.on_control("bob", held[0])    # the ACCEPT arrives after all: ignored
    assert isinstance(pair.alice.inbox.wait_for(lambda e: isinstance(e, FileDone)), FileDone)
    assert not pair.alice.inbox.of(FileFailed) and not pair.bob.inbox.of(FileFailed)
