"""End-to-end file transfers between two FileTransfers managers over real TCP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from client.events import FileDone, FileFailed, FileOffered, FileProgress
from tests.test_files_support import Pair


def _make(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _send(pair: Pair, src: Path, timeout: float = 30.0) -> tuple[FileDone, FileDone]:
    (tid,) = pair.alice.ft.offer("bob", [src])
    offered = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileOffered))
    assert offered.sender == "alice" and offered.size == src.stat().st_size
    pair.bob.ft.accept(offered.transfer_id)
    got = pair.bob.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed), timeout)
    sent = pair.alice.inbox.wait_for(lambda e: isinstance(e, FileDone | FileFailed), timeout)
    assert isinstance(got, FileDone), got
    assert isinstance(sent, FileDone) and sent.transfer_id == tid, sent
    return got, sent


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 7])
def test_small_sizes_arrive_identical(pair: Pair, size: int) -> None:
    data = os.urandom(size)
    src = _make(pair.root / "src" / "blob.bin", data)
    got, _ = _send(pair, src)
    assert got.path == pair.root / "bob-dl" / "blob.bin"
    assert got.path.read_bytes() == data
    assert sorted(p.name for p in got.path.parent.iterdir()) == ["blob.bin"]   # no .part left


def test_unicode_name(pair: Pair) -> None:
    src = _make(pair.root / "src" / "отчёт 📄 2024.txt", "привет".encode())
    got, _ = _send(pair, src)
    assert got.path.name == "отчёт 📄 2024.txt" and got.name == "отчёт 📄 2024.txt"
    assert got.path.read_text(encoding="utf-8") == "привет"


def test_never_overwrites(pair: Pair) -> None:
    _make(pair.root / "bob-dl" / "a.txt", b"old")
    src = _make(pair.root / "src" / "a.txt", b"new")
    got, _ = _send(pair, src)
    assert got.path.name == "a (1).txt" and got.path.read_bytes() == b"new"
    assert (pair.root / "bob-dl" / "a.txt").read_bytes() == b"old"


def test_100_mib_random_hashes_match(pair: Pair) -> None:
    src = pair.root / "src" / "big.bin"
    src.parent.mkdir()
    h = hashlib.blake2b()
    with open(src, "wb") as f:
        for _ in range(100):
            block = os.urandom(1 << 20)
            h.update(block)
            f.write(block)
    got, _ = _send(pair, src, timeout=60)
    h2 = hashlib.blake2b()
    with open(got.path, "rb") as f:
        while block := f.read(1 << 20):
            h2.update(block)
    assert h2.digest() == h.digest()
    progress = pair.bob.inbox.of(FileProgress)
    assert progress and progress[-1].done == 100 << 20 and not progress[-1].outgoing
    assert all(p.bytes_per_s >= 0 for p in progress)


def test_public_pynacl_api_path(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    from client.files import stream as files_stream
    monkeypatch.setattr(files_stream, "_FAST", False)
    data = os.urandom(2 * (1 << 20) + 5)
    src = _make(pair.root / "src" / "slow.bin", data)
    got, _ = _send(pair, src)
    assert got.path.read_bytes() == data


def test_memory_stays_flat_whatever_the_size(pair: Pair) -> None:
    import tracemalloc
    src = pair.root / "src" / "flat.bin"
    src.parent.mkdir()
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        got, _ = _send(pair, src, timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.path.stat().st_size == 64 << 20
    assert peak < 12 << 20, peak       # a few 1 MiB buffers per side, not the file
