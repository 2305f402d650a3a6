"""Defects found in review: a dying transfer thread, a moved downloads folder, close() time,
late progress events, a slow downloads folder, a leaked reverse socket."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from client.events import FileDone, FileFailed, FileOffered, FileProgress
from client.files import FileTransfers, resume, wire
from client.files.state import State, Transfer
from tests.test_files_support import Inbox, Pair


def _engine_gone(peer: str, label: bytes) -> bytes:
    raise RuntimeError("engine did not answer")


def _closed_by_peer(conn: socket.socket, timeout: float = 5.0) -> bool:
    """True once the other end has closed (recv returns b"" or the connection resets)."""
    conn.settimeout(timeout)
    try:
        while conn.recv(4096):
            pass
    except ConnectionError:
        pass
    return True


def _manager(tmp_path: Path, inbox: Inbox, **kw) -> FileTransfers:
    opts = {"key_for": lambda peer, label: bytes(32),
            "address_of": lambda peer: ("127.0.0.1", 1)} | kw
    ft = FileTransfers(downloads=tmp_path / "dl", send_control=lambda peer, payload: None,
                       emit=inbox, listen_host="127.0.0.1", **opts)
    ft.start()
    return ft


def test_key_for_raising_fails_the_send_and_closes_its_socket(tmp_path: Path) -> None:
    inbox = Inbox()
    ft = _manager(tmp_path, inbox, key_for=_engine_gone)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    try:
        (tid,) = ft.offer("bob", [src])
        token = ft.control.by_id[tid].token
        with socket.create_connection(("127.0.0.1", ft.port), timeout=5) as conn:
            conn.sendall(wire.encode_preamble(wire.ROLE_RECEIVER, token))
            failed = inbox.wait_for(lambda e: isinstance(e, FileFailed), 5)
            assert failed.transfer_id == tid and failed.reason == "internal error"
            assert _closed_by_peer(conn)
        assert tid not in ft.control.by_id
    finally:
        ft.close()


def test_address_of_raising_fails_the_connect_back(tmp_path: Path) -> None:
    inbox = Inbox()

    def address_of(peer: str) -> tuple[str, int]:
        raise RuntimeError("engine closed")

    ft = _manager(tmp_path, inbox, address_of=address_of)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    try:
        (tid,) = ft.offer("bob", [src])
        token = ft.control.by_id[tid].token
        ft.on_control("bob", wire.encode_control(wire.Accept(token)))
        ft.on_control("bob", wire.encode_control(wire.Reverse(token, 1)))
        failed = inbox.wait_for(lambda e: isinstance(e, FileFailed), 5)
        assert failed.transfer_id == tid and failed.reason == "internal error"
        time.sleep(0.05)
        assert not [th for th in ft._threads if th.name == f"files-send-{tid}"]
    finally:
        ft.close()


def test_changing_downloads_mid_transfer_finishes_in_the_first_folder(pair: Pair) -> None:
    src, data = pair.source("moved.bin", 3 << 20)
    blocker = pair.root / "not-a-folder"
    blocker.write_bytes(b"")
    emit = pair.bob.ft._emit

    def emit_and_move(event: object) -> None:
        if isinstance(event, FileProgress):     # the .part is open: the user picks another
            pair.bob.ft.downloads = blocker / "dl"  # folder (one that cannot even be created)
        emit(event)

    pair.bob.ft._emit = emit_and_move
    pair.alice.ft.offer("bob", [src])
    offered = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered))
    pair.bob.ft.accept(offered.transfer_id)
    got = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed), 15)
    assert isinstance(got, FileDone), got
    assert got.path == pair.root / "bob-dl" / "moved.bin"
    assert got.path.read_bytes() == data
    assert sorted(p.name for p in got.path.parent.iterdir()) == ["moved.bin"]


def test_close_waits_at_most_about_a_second_in_all(tmp_path: Path) -> None:
    inbox = Inbox()
    release = threading.Event()

    def slow_address_of(peer: str) -> tuple[str, int]:
        release.wait(10)        # like the engine's _call waiting on a busy engine thread
        return ("127.0.0.1", 1)

    ft = _manager(tmp_path, inbox, address_of=slow_address_of)
    srcs = []
    for i in range(4):
        srcs.append(tmp_path / f"f{i}.bin")
        srcs[-1].write_bytes(b"x")
    try:
        tids = ft.offer("bob", srcs)
        for tid in tids:
            token = ft.control.by_id[tid].token
            ft.on_control("bob", wire.encode_control(wire.Accept(token)))
            ft.on_control("bob", wire.encode_control(wire.Reverse(token, 1)))
        started = time.monotonic()
        ft.close()
        took = time.monotonic() - started
        assert took < 1.5, took
        ended = {e.transfer_id for e in inbox.of(FileFailed) if e.reason == "closed"}
        assert ended == set(tids)
    finally:
        release.set()


def test_no_progress_once_stopped_or_finished(tmp_path: Path) -> None:
    inbox = Inbox()
    ft = _manager(tmp_path, inbox)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    try:
        first, second = ft.offer("bob", [src, src])
        t1, t2 = ft.control.by_id[first], ft.control.by_id[second]
        ft.cancel(first)
        ft.progress(t1, 10)                    # a sending thread a moment late
        assert ft._take(t2)                     # as when it reports FileDone
        ft.progress(t2, 1000)
        assert inbox.of(FileProgress) == []
    finally:
        ft.close()


def test_progress_racing_a_cancel_comes_before_the_final_event(pair: Pair) -> None:
    """The sending thread is inside its progress emit while another thread cancels: the
    FileFailed must still be the last event of that transfer."""
    src, _ = pair.source("race.bin", 3 << 20)
    emit = pair.alice.ft._emit
    cancels: list[threading.Thread] = []

    def emit_and_cancel(event: object) -> None:
        if isinstance(event, FileProgress) and not cancels:
            th = threading.Thread(target=pair.alice.ft.cancel, args=(event.transfer_id,))
            cancels.append(th)
            th.start()
            th.join(0.3)            # before the fix the cancel ran to the end in here
        emit(event)

    pair.alice.ft._emit = emit_and_cancel
    (tid,) = pair.alice.ft.offer("bob", [src])
    offered = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered))
    pair.bob.ft.accept(offered.transfer_id)
    pair.alice.inbox.wait_for(lambda e: isinstance(e, FileFailed), 10)
    cancels[0].join(5)
    time.sleep(0.1)                 # any late progress would land by now
    mine = [e for e in pair.alice.inbox.events if getattr(e, "transfer_id", None) == tid]
    assert isinstance(mine[-1], FileFailed) and mine[-1].reason == "cancelled", mine


def _incoming(ft: FileTransfers, name: str, size: int = 10) -> Transfer:
    return Transfer(ft.control.new_id(), "bob", bytes(wire.TOKEN_LEN), name, size, 0,
                    outgoing=False)


def test_a_new_part_is_chosen_outside_the_engine_lock(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Picking a free name (many checks on a slow folder) must leave _lock to the engine."""
    ft = FileTransfers(downloads=tmp_path / "dl", send_control=lambda peer, payload: None,
                       emit=Inbox(), key_for=lambda peer, label: None,
                       address_of=lambda peer: None)
    (tmp_path / "dl").mkdir()
    for taken in ("a.bin.part", "a (1).bin.part.json"):   # someone else's, of either kind
        (tmp_path / "dl" / taken).write_bytes(b"")
    free_for_others: list[bool] = []

    def probe() -> None:
        got = ft.lock.acquire(timeout=2)
        if got:
            ft.lock.release()
        free_for_others.append(got)

    real_names = resume.candidate_names

    def probing_names(name: str, limit: int = 10_000):
        for cand in real_names(name, limit):
            th = threading.Thread(target=probe)     # as the engine thread would, meanwhile
            th.start()
            th.join()
            yield cand

    monkeypatch.setattr(resume, "candidate_names", probing_names)
    t = _incoming(ft, "a.bin")
    out, offset = ft._store.open(t, ft.downloads)
    out.close()
    assert (t.part, offset) == (tmp_path / "dl" / "a (2).bin.part", 0)
    assert free_for_others == [True, True, True]
    assert t.part in ft._store.in_use


def test_a_part_in_use_is_not_handed_out_twice(tmp_path: Path) -> None:
    ft = FileTransfers(downloads=tmp_path / "dl", send_control=lambda peer, payload: None,
                       emit=Inbox(), key_for=lambda peer, label: None,
                       address_of=lambda peer: None)
    first = _incoming(ft, "a.bin")
    out, _ = ft._store.open(first, ft.downloads)
    out.close()
    first.part.unlink()                 # deleted by hand while its transfer still runs
    second = _incoming(ft, "a.bin")
    out, _ = ft._store.open(second, ft.downloads)
    out.close()
    assert first.part == tmp_path / "dl" / "a.bin.part"
    assert second.part == tmp_path / "dl" / "a (1).bin.part"


def test_a_late_reverse_connection_is_closed_with_the_part(tmp_path: Path) -> None:
    """The sender's connection arrived just after the receiver stopped waiting for it."""
    ft = FileTransfers(downloads=tmp_path / "dl", send_control=lambda peer, payload: None,
                       emit=Inbox(), key_for=lambda peer, label: None,
                       address_of=lambda peer: None)
    t = _incoming(ft, "a.bin")
    ours, theirs = socket.socketpair()
    t.reverse_sock = ours                       # stored by the listener, never picked up
    ft._receiver.release(t)
    assert ours.fileno() == -1
    assert _closed_by_peer(theirs)
    theirs.close()


def test_no_reverse_connection_is_handed_to_a_finished_worker(tmp_path: Path) -> None:
    ft = FileTransfers(downloads=tmp_path / "dl", send_control=lambda peer, payload: None,
                       emit=Inbox(), key_for=lambda peer, label: None,
                       address_of=lambda peer: None)
    t = _incoming(ft, "a.bin")
    t.state = State.ACCEPTED
    with ft.lock:
        ft.control.add(t)
    ft._receiver.release(t)                         # the worker gave up (its wait timed out)
    ours, theirs = socket.socketpair()
    ft._handoff(ours, ("127.0.0.1", 1), wire.ROLE_SENDER, t.token)
    assert t.reverse_sock is None and ours.fileno() == -1
    assert _closed_by_peer(theirs)
    theirs.close()
