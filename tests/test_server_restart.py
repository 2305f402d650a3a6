"""The server crashing must not break the chat; start-up failures are one clear line."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from models import directory_wire as wire
from tests.conftest import ROOT, SERVER, TcpSession


def run_server(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SERVER), "--host", "127.0.0.1", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def keep_pinging(clients, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for c in clients:
            c.ping()
        time.sleep(0.2)


def test_sigkill_restart_is_invisible_to_pinging_clients(server, joined) -> None:
    a = joined(server, "alpha")
    b = joined(server, "beta")
    doomed = joined(server, "doomed")
    keep_pinging([a, b, doomed], 0.3)
    for c in (a, b):
        c.drain(0.1)
    assert set(a.roster) == {"beta", "doomed"}
    server.kill()
    doomed.close()  # dies while the server is down
    server.start()  # same DB, same port
    assert server.wait_for_log(r"loaded 3 clients", since_start=True)
    keep_pinging([a, b], 1.0)
    # nobody saw alpha/beta leave or rejoin; the dead one goes after the usual timeout
    got_a, got_b = [], []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and ("doomed" in a.roster or "doomed" in b.roster):
        a.ping()
        b.ping()
        got_a += a.drain(0.1)
        got_b += b.drain(0.1)
    assert got_a == [wire.RefDel(a.keyword, ("doomed",))]
    assert got_b == [wire.RefDel(b.keyword, ("doomed",))]
    assert set(a.roster) == {"beta"} and set(b.roster) == {"alpha"}
    a.ping(a.digest())
    assert a.recv_until(lambda m: isinstance(m, wire.Pong)).digest == a.digest()


def test_sigterm_stops_cleanly_and_keeps_the_directory(server, joined) -> None:
    joined(server, "kept")
    time.sleep(0.1)
    assert server.stop() == 0
    assert any("stopped; directory saved" in line for line in server.log_lines())
    rows = sqlite3.connect(server.db_path).execute(
        "SELECT nickname, host, port FROM clients").fetchall()
    assert [r[0] for r in rows] == ["kept"] and rows[0][1] == "127.0.0.1"


def test_missing_database_is_created_with_the_design_table(server) -> None:
    sql = sqlite3.connect(server.db_path).execute(
        "SELECT sql FROM sqlite_master WHERE name = 'clients'").fetchone()[0]
    assert sql == ("CREATE TABLE clients (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                   "nickname CHAR(24), keyword CHAR(24), host TEXT, port INTEGER, "
                   "UNIQUE(nickname))")


def test_second_server_on_same_port_exits_with_clear_error(server, tmp_path) -> None:
    result = run_server("--port", str(server.port), "--db", str(tmp_path / "other.db"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on" in lines[0] and "Traceback" not in lines[0]
    # the first server is unaffected
    tcp = TcpSession(server.address)
    assert isinstance(tcp.request(wire.InfoRequest()), wire.Info)
    tcp.close()


def test_udp_port_taken_alone_is_refused_too(tmp_path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        result = run_server("--port", str(udp.getsockname()[1]), "--db", str(tmp_path / "x.db"))
    finally:
        udp.close()
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_database_one_line_exit_2(tmp_path) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"this is not a database" * 200)
    result = run_server("--port", "0", "--db", str(db))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"server.py: cannot use database {db}: file is not a database"]


def test_foreign_table_and_directory_path_are_refused(tmp_path) -> None:
    db = tmp_path / "foreign.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE clients (name TEXT)")
    con.commit()
    con.close()
    result = run_server("--port", "0", "--db", str(db))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = run_server("--port", "0", "--db", str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_locked_database_at_start_one_line_exit_2(tmp_path) -> None:
    db = tmp_path / "locked.db"
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("CREATE TABLE t (x)")
    lock.execute("BEGIN EXCLUSIVE")
    try:
        result = run_server("--port", "0", "--db", str(db), "--db-timeout", "0.2")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"server.py: cannot use database {db}: database is locked"]


def test_bad_options_are_one_line_errors(tmp_path) -> None:
    for args in (["--ping-interval", "0"], ["--port", "70000"], ["--ping-interval", "nan"]):
        result = run_server(*args, "--db", str(tmp_path / "x.db"))
        assert result.returncode == 2 and "Traceback" not in result.stderr
    assert run_server("--help").returncode == 0


@pytest.mark.parametrize("server", [{"extra_args": ("--register-rate", "0")}], indirect=True)
def test_sigkill_during_registrations_leaves_whole_rows(server) -> None:
    """Every KEYWORD the server answered is on disk (it replies only after the commit), and
    a kill -9 in the middle of a flood leaves a consistent database."""
    answered: list[str] = []
    stop = threading.Event()

    def flood(prefix: str) -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            try:
                tcp = TcpSession(server.address, timeout=2)
                reply = tcp.request(wire.Connect(f"{prefix}{i}"))
                tcp.close()
            except (OSError, ConnectionError):
                return
            if isinstance(reply, wire.Keyword):
                answered.append(f"{prefix}{i}")

    threads = [threading.Thread(target=flood, args=(p,)) for p in ("a", "b", "c", "d")]
    for t in threads:
        t.start()
    time.sleep(0.5)
    server.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(answered) > 20
    con = sqlite3.connect(server.db_path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = con.execute("SELECT nickname, keyword FROM clients").fetchall()
    con.close()
    assert all(nick and len(kw) == 24 for nick, kw in rows)
    assert set(answered) <= {nick for nick, _ in rows}
    server.start()  # and it starts again on it
    assert server.wait_for_log(r"loaded \d+ clients", since_start=True)


def test_second_server_on_the_same_database_is_refused(server_factory, tmp_path):
    """A second server on a database in use would expire everyone and empty the table."""
    first = server_factory(ping_interval=1.0)
    second = subprocess.run(
        [sys.executable, str(SERVER), "--host", "127.0.0.1", "--port", "0",
         "--db", str(first.db_path)],
        capture_output=True, text=True, timeout=20)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another server" in lines[0], second.stderr
    assert f"pid {first.proc.pid}" in lines[0]
    assert "Traceback" not in second.stderr
