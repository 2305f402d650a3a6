"""Storage faults (issue 12, items 1 and 2): writes lost while the database is locked or the
disk is full are retried until the table matches the directory; a restart after ``kill -9``
never lists a row the previous run had removed; a full disk is called a full disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from models import directory_wire as wire
from tests.conftest import ROOT, ServerProcess, TcpSession, wait_until


def rows_of(db: Path) -> set[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {r[0] for r in con.execute("SELECT nickname FROM clients")}
    finally:
        con.close()


@contextlib.contextmanager
def exclusive_lock(db: Path):
    """Another process' connection holding ``BEGIN EXCLUSIVE`` (the issue's reproduction)."""
    con = sqlite3.connect(db, isolation_level=None, timeout=5)
    con.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


ARGS = ("--db-timeout", "0.1")


def test_leave_during_a_lock_is_written_once_the_lock_is_gone(server_factory, joined) -> None:
    server = server_factory(ping_interval=5.0, extra_args=ARGS)
    watcher = joined(server, "watcher")
    victims = [joined(server, f"victim{i}") for i in range(3)]
    assert wait_until(lambda: rows_of(server.db_path) >= {"victim0", "victim1", "victim2"})
    with exclusive_lock(server.db_path):
        for v in victims:
            v.quit()
        assert server.wait_for_log(r"storage: .*join/leave writes waiting", timeout=5)
        assert "victim0" in rows_of(server.db_path)
    assert wait_until(lambda: rows_of(server.db_path) == {"watcher"}, timeout=8)
    assert server.wait_for_log(r"storage: working again")
    watcher.drain(0.1)


def test_kill_9_with_leaves_unwritten_lists_no_phantom(server_factory, joined) -> None:
    server = server_factory(ping_interval=5.0, extra_args=ARGS)
    watcher = joined(server, "watcher")
    victim = joined(server, "victim")
    assert wait_until(lambda: rows_of(server.db_path) == {"watcher", "victim"})
    watcher.drain(0.2)
    with exclusive_lock(server.db_path):
        victim.quit()
        assert watcher.recv_until(lambda m: isinstance(m, wire.RefDel)) is not None
        assert server.wait_for_log(r"storage: .*join/leave writes waiting", timeout=5)
        leaves = server.db_path.with_name(server.db_path.name + ".leaves")
        assert wait_until(lambda: b"victim " in leaves.read_bytes())
        server.kill()
    server.start()
    assert server.wait_for_log(r"loaded 1 clients", since_start=True), server.log_lines()
    assert wait_until(lambda: rows_of(server.db_path) == {"watcher"})
    tcp = TcpSession(server.address)
    assert isinstance(tcp.request(wire.Connect("newcomer")), wire.Keyword)
    ref = tcp.request(wire.ReferenceRequest())
    tcp.close()
    assert isinstance(ref, wire.Reference)
    assert [e.nickname for e in ref.entries] == ["watcher"]
    # the watcher's roster (without the victim) is what the server expects: no repair, no
    # phantom "victim joined"
    watcher.ping(watcher.digest())
    pong = watcher.recv_until(lambda m: isinstance(m, wire.Pong))
    assert pong is not None and pong.digest == watcher.digest()


# ------------------------------------------------------------------ a full disk (tmpfs)


def _can_mount_tmpfs() -> str | None:
    if (sys.platform != "linux" or os.geteuid() != 0
            or not (shutil.which("unshare") and shutil.which("nsenter"))):
        return "needs Linux, root, unshare(1) and nsenter(1)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k t /mnt"],
                           capture_output=True, timeout=10)
    return None if probe.returncode == 0 else "cannot mount a tmpfs in a mount namespace"


_SKIP = _can_mount_tmpfs()
needs_tmpfs = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


class TmpfsServer(ServerProcess):
    """server.py in its own mount namespace, its database folder a tmpfs of ``size``; the
    test reaches the folder through ``/proc/PID/root``."""

    def __init__(self, folder: Path, size: str, fill: bool = False, **kw: object) -> None:
        super().__init__(folder / "dir.db", **kw)  # type: ignore[arg-type]
        self.folder, self.size, self.fill = folder, size, fill

    def command(self) -> list[str]:
        fill = f"cat /dev/zero > {self.folder}/fill 2>/dev/null; " if self.fill else ""
        inner = " ".join(f"'{a}'" for a in super().command())
        return ["unshare", "-m", "sh", "-c",
                f"mount -t tmpfs -o size={self.size} tmpfs {self.folder} && {fill}exec {inner}"]

    def inside(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """``cmd`` in the server's mount namespace (where the tmpfs is)."""
        assert self.proc is not None
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", *cmd],
                              capture_output=True, text=True, timeout=20)

    def rows(self) -> set[str]:
        out = self.inside(sys.executable, "-c", "import sqlite3, sys; print(*(r[0] for r in "
                          "sqlite3.connect(sys.argv[1]).execute('SELECT nickname FROM clients')))",
                          str(self.db_path))
        assert out.returncode == 0, out.stderr
        return set(out.stdout.split())


@needs_tmpfs
def test_full_disk_at_start_says_disk_full(tmp_path) -> None:
    folder = tmp_path / "full"
    folder.mkdir()
    srv = TmpfsServer(folder, "256k", fill=True)
    result = subprocess.run(srv.command(), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"server.py: cannot use database {folder / 'dir.db'}: "
                     f"disk full (0 bytes free at {folder})"], result.stderr


@needs_tmpfs
def test_starts_with_what_the_schema_needs(tmp_path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    srv = TmpfsServer(folder, "64k", ping_interval=5.0)
    srv.start()
    try:
        assert srv.rows() == set()
    finally:
        srv.kill()


@needs_tmpfs
def test_leaves_on_a_full_disk_are_written_once_there_is_room(tmp_path, dir_client) -> None:
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    srv = TmpfsServer(folder, "1m", ping_interval=5.0)
    srv.start()
    try:
        clients = []
        for i in range(6):
            c = dir_client(srv, f"quitter{i}")
            assert isinstance(c.register(), wire.Keyword)
            c.ping()
            clients.append(c)
        assert wait_until(lambda: len(srv.rows()) == 6)
        srv.inside("sh", "-c", f"cat /dev/zero > {folder}/fill")
        for c in clients:
            c.quit()
        assert srv.wait_for_log(r"storage: .*disk full \(\d[\d,]* bytes free at ", timeout=5)
        assert not any("cannot rollback" in line for line in srv.log_lines())
        # a registration meanwhile is refused with STORAGE, not lost
        late = dir_client(srv, "late")
        reply = late.register()
        assert isinstance(reply, wire.Error) and reply.code == "STORAGE"
        srv.inside("rm", f"{folder}/fill")
        assert wait_until(lambda: srv.rows() == set(), timeout=8), srv.rows()
    finally:
        srv.kill()
