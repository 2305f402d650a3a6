"""File transfer over the peers' encrypted UDP path (client/files/udplane.py), with real engines
and the real server on 127.0.0.1: the same offer/accept, integrity, progress and resume as over
TCP; the fallback when TCP fails both ways; chat delivered during a transfer."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from client import events as ev
from client.engine import Engine
from tests.test_engine import Probe

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair(server, tmp_path: Path):
    made = []

    def make(nick: str, udp: str = "udp") -> Probe:
        eng = Engine(server.address, nick, config_dir=tmp_path / nick, bind=("127.0.0.1", 0))
        made.append(eng)
        eng.start(timeout=5)
        files = eng.attach_files(tmp_path / f"{nick}-dl")
        files.settings.udp = udp
        return Probe(eng)

    yield make
    for eng in made:
        eng.close()


def _source(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return path, data


def _transfer(alice: Probe, bob: Probe, path: Path, timeout: float = 30.0) -> ev.FileDone:
    bob.wait(lambda e: isinstance(e, ev.Joined) or "alice" in bob.engine.roster(), 5)
    alice.wait(lambda e: "bob" in alice.engine.roster(), 5)
    (tid,) = alice.engine.offer_files("bob", [path])
    offered = bob.wait_for(ev.FileOffered, timeout=10)
    bob.engine.accept_file(offered.transfer_id)
    done = bob.wait(lambda e: isinstance(e, ev.FileDone | ev.FileFailed), timeout)
    assert isinstance(done, ev.FileDone), done
    sent = alice.wait(lambda e: isinstance(e, ev.FileDone | ev.FileFailed)
                      and e.transfer_id == tid, 10)
    assert isinstance(sent, ev.FileDone), sent
    return done


def test_a_file_crosses_the_udp_path_byte_identical_with_progress(pair, tmp_path) -> None:
    alice, bob = pair("alice"), pair("bob")
    path, data = _source(tmp_path, 3 << 20)
    done = _transfer(alice, bob, path)
    assert hashlib.sha256(done.path.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert bob.of(ev.FileProgress) and alice.of(ev.FileProgress)
    assert not list(done.path.parent.glob("*.part*"))


def test_tcp_failing_both_ways_falls_back_to_the_udp_path(pair, tmp_path) -> None:
    alice, bob = pair("alice", udp="auto"), pair("bob", udp="auto")
    for p in (alice, bob):      # nobody's TCP listener answers: refused at once
        p.engine.files._listener.close()
        p.engine.files.settings.connect_timeout = 1.0
    path, data = _source(tmp_path, 200_000)
    done = _transfer(alice, bob, path)
    assert done.path.read_bytes() == data


def test_chat_gets_through_during_a_transfer(pair, tmp_path) -> None:
    alice, bob = pair("alice"), pair("bob")
    path, data = _source(tmp_path, 8 << 20)
    bob.wait(lambda e: "alice" in bob.engine.roster(), 5)
    alice.wait(lambda e: "bob" in alice.engine.roster(), 5)
    alice.engine.offer_files("bob", [path])
    bob.engine.accept_file(bob.wait_for(ev.FileOffered, timeout=10).transfer_id)
    bob.wait_for(ev.FileProgress, timeout=10)
    sent_at = {}
    for i in range(5):
        sent_at[f"m{i}"] = time.monotonic()
        alice.engine.send_private("bob", f"m{i}")
        time.sleep(0.02)
    lags = []
    for i in range(5):
        bob.wait(lambda e, i=i: isinstance(e, ev.PrivateMessage) and e.text == f"m{i}", 10)
        lags.append(time.monotonic() - sent_at[f"m{i}"])
    assert max(lags) < 1.0
    done = bob.wait(lambda e: isinstance(e, ev.FileDone | ev.FileFailed), 30)
    assert isinstance(done, ev.FileDone) and done.path.read_bytes() == data


def test_a_cancel_mid_transfer_ends_both_sides_and_frees_the_stream(pair, tmp_path) -> None:
    alice, bob = pair("alice"), pair("bob")
    path, _data = _source(tmp_path, 64 << 20)
    bob.wait(lambda e: "alice" in bob.engine.roster(), 5)
    alice.wait(lambda e: "bob" in alice.engine.roster(), 5)
    (tid,) = alice.engine.offer_files("bob", [path])
    bob.engine.accept_file(bob.wait_for(ev.FileOffered, timeout=10).transfer_id)
    bob.wait(lambda e: isinstance(e, ev.FileProgress) and e.done > 0, 10)
    alice.engine.cancel_file(tid)
    failed = bob.wait(lambda e: isinstance(e, ev.FileDone | ev.FileFailed), 10)
    assert isinstance(failed, ev.FileFailed) and "cancelled" in failed.reason
    assert isinstance(alice.wait_for(ev.FileFailed, timeout=10), ev.FileFailed)
    end = time.monotonic() + 6     # the streams linger at most a few seconds
    lanes = [p.engine.files.lane for p in (alice, bob)]
    while any(lane.next_deadline(time.monotonic()) is not None for lane in lanes):
        assert time.monotonic() < end, "a stream outlived its transfer"
        time.sleep(0.1)
    assert not list((tmp_path / "bob-dl").glob("*.part"))     # cancelled: no .part kept


def test_stream_frames_for_no_transfer_are_dropped(tmp_path) -> None:
    from client.files.udplane import UdpLane
    from client.files.udpwire import FLAG_DATA, Segment, encode

    refused = []
    lane = UdpLane(wake=lambda: None, accept=lambda peer, sid, conn: refused.append(sid) or False)
    for sid in range(100):
        lane.on_frame("mallory", encode(Segment(sid, FLAG_DATA, seq=0, payload=b"x")), 0.0)
        lane.on_frame("mallory", encode(Segment(sid, FLAG_DATA, seq=5, payload=b"x")), 0.0)
        lane.on_frame("mallory", b"\x20garbage", 0.0)
    assert len(refused) == 100 and lane.take_bulk(0.0, 100) == []
    assert lane.next_deadline(0.0) is None and lane.dropped == 300
