"""Shared fixtures: a real ``server.py`` subprocess, and a small directory client for tests.

``server`` -> a running server on 127.0.0.1 (free port, temp DB, ``--ping-interval 1``).
Parametrise with ``@pytest.mark.parametrize("server", [{"ping_interval": 0.5}], indirect=True)``
or use ``server_factory(ping_interval=1.0, db_path=None, extra_args=())`` for more than one.
``dir_client(server, nickname)`` -> ``DirClient``: plain sockets speaking the design protocol.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from models import directory_wire as wire
from tests.test_files_support import Pair

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server.py"
_LISTENING = re.compile(r"listening on (\S+):(\d+) \(tcp\+udp\)")

# Clients (and servers) started by tests stay off LAN discovery unless a test turns it on
# (--lan, ReachConfig(lan=True)): many run on this host at once, several suites in parallel.
os.environ["OPENLCHAT_NO_LAN"] = "1"


@pytest.fixture(autouse=True)
def _logs_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients started by a test (in process or as subprocesses, which inherit the environment)
    never write into the tester's own per-OS log folder."""
    if "OPENLCHAT_LOG_DIR" not in os.environ:
        monkeypatch.setenv("OPENLCHAT_LOG_DIR", str(tmp_path_factory.mktemp("logs")))


class ServerProcess:
    """``server.py`` in a subprocess; its stderr (the log) is collected line by line."""

    def __init__(self, db_path: Path, ping_interval: float = 1.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.db_path = Path(db_path)
        self.ping_interval = ping_interval
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._new_line = threading.Condition(self._lock)

    def command(self) -> list[str]:
        return [sys.executable, str(SERVER), "--host", self.host, "--port", str(self.port),
                "--db", str(self.db_path), "--ping-interval", str(self.ping_interval),
                "--stats-interval", "0", "--log-level", "DEBUG", *self.extra_args]

    def start(self, timeout: float = 15.0) -> ServerProcess:
        """Start (again, on the same DB and port once it has one); wait for "listening"."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self._lock:
            self._lines.append("--- start ---")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", errors="replace", env=env)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        line = self.wait_for_log(_LISTENING, timeout=timeout, since_start=True)
        if line is None:
            self.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.log_lines()))
        match = _LISTENING.search(line)
        assert match is not None
        self.port = int(match.group(2))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            with self._new_line:
                self._lines.append(raw.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def log_lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 5.0,
                     since_start: bool = False, start_index: int = 0) -> str | None:
        """The first log line matching ``pattern`` (from ``start_index``, or from the latest
        start), waiting up to ``timeout``; None if it never comes or the process ends."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._new_line:
            if since_start:
                start_index = len(self._lines) - 1 - self._lines[::-1].index("--- start ---")
            while True:
                for line in self._lines[start_index:]:
                    if regex.search(line):
                        return line
                start_index = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._new_line.wait(min(left, 0.1))

    def kill(self) -> None:
        """SIGKILL: the crash the design fears."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(ping_interval: float = 1.0, db_path: Path | None = None,
             extra_args: tuple[str, ...] | list[str] = (), start: bool = True) -> ServerProcess:
        path = db_path if db_path is not None else tmp_path / f"dir{len(started)}.db"
        srv = ServerProcess(path, ping_interval, tuple(extra_args))
        started.append(srv)
        return srv.start() if start else srv

    yield make
    tracebacks = []
    for srv in started:
        srv.kill()
        if srv.proc is not None and srv.proc.stderr is not None:
            srv.proc.stderr.close()
        if any("Traceback" in line for line in srv.log_lines()):
            tracebacks.append("\n".join(srv.log_lines()))
    if tracebacks:  # bad input must never print a traceback
        pytest.fail("server printed a traceback:\n" + tracebacks[0])


@pytest.fixture
def server(request: pytest.FixtureRequest, server_factory: Callable[..., ServerProcess]
           ) -> ServerProcess:
    params = getattr(request, "param", None) or {}
    return server_factory(**params)


# ------------------------------------------------------------------ a test client


class TcpSession:
    """One TCP connection to the directory: send request lines, read reply lines."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, msg: object) -> wire.Reply:
        self.send(wire.encode_line(msg))  # type: ignore[arg-type]
        return self.reply()

    def line(self) -> bytes | None:
        """The next raw line (with ``\\n``), or None at EOF."""
        while b"\n" not in self._buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> wire.Reply:
        line = self.line()
        if line is None:
            raise ConnectionError("server closed the connection")
        return wire.decode_reply(line)

    def closed(self, timeout: float = 3.0) -> bool:
        """True if the server closes the connection within ``timeout`` (data is discarded)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


class DirClient:
    """A directory client made of plain sockets, keeping the roster it is told about."""

    def __init__(self, server: ServerProcess, nickname: str) -> None:
        self.server = server
        self.nickname = nickname
        self.keyword: str | None = None
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.roster: dict[str, tuple[str, int]] = {}
        self.received: list[object] = []

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]

    def register(self, keyword: str | None = None, switch: bool = True) -> wire.Reply:
        """CONNECT [keyword] / REFERENCE? / CHANNEL_SWITCH. Returns the CONNECT reply."""
        tcp = TcpSession(self.server.address)
        try:
            reply = tcp.request(wire.Connect(self.nickname, keyword))
            if not isinstance(reply, wire.Keyword):
                return reply
            self.keyword = reply.keyword
            ref = tcp.request(wire.ReferenceRequest())
            assert isinstance(ref, wire.Reference), ref
            self.roster = {e.nickname: (e.host, e.port) for e in ref.entries}
            if switch:
                tcp.send(wire.encode_line(wire.ChannelSwitch()))
                assert tcp.closed(), "server must close after CHANNEL_SWITCH"
            return reply
        finally:
            tcp.close()

    def send(self, data: bytes) -> None:
        self.udp.sendto(data, self.server.address)

    def ping(self, digest: str | None = None, nickname: str | None = None) -> None:
        assert self.keyword is not None
        self.send(wire.encode_datagram(wire.Ping(self.keyword, nickname or self.nickname, digest)))

    def quit(self) -> None:
        assert self.keyword is not None
        self.send(wire.encode_datagram(wire.Quit(self.keyword, self.nickname)))

    def digest(self) -> str:
        return wire.roster_digest(wire.Entry(n, h, p) for n, (h, p) in self.roster.items())

    def recv(self, timeout: float = 2.0) -> object | None:
        """The next directory datagram, decoded and applied to the roster; None on timeout.
        Peer traffic (first byte 0xC1: clients punch toward everyone who joins, issue 10) is
        not for a directory client and is skipped."""
        deadline = time.monotonic() + timeout
        while True:
            self.udp.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data, _ = self.udp.recvfrom(65536)
            except TimeoutError:
                return None
            if data[:1] != b"\xc1":
                break
        msg = wire.decode_datagram(data)
        self.received.append(msg)
        if isinstance(msg, wire.RefAdd):
            for e in msg.entries:
                self.roster[e.nickname] = (e.host, e.port)
        elif isinstance(msg, wire.RefDel):
            for nick in msg.nicknames:
                self.roster.pop(nick, None)
        return msg

    def recv_until(self, predicate: Callable[[object], bool], timeout: float = 3.0
                   ) -> object | None:
        """Receive until a datagram satisfies ``predicate``; None if none does in time."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is not None and predicate(msg):
                return msg
        return None

    def drain(self, quiet: float = 0.2) -> list[object]:
        """Everything that arrives until ``quiet`` seconds pass without a datagram."""
        got = []
        while (msg := self.recv(quiet)) is not None:
            got.append(msg)
        return got

    def close(self) -> None:
        self.udp.close()


class _Clients:
    def __init__(self) -> None:
        self.made: list[DirClient] = []

    def __call__(self, server: ServerProcess, nickname: str) -> DirClient:
        client = DirClient(server, nickname)
        self.made.append(client)
        return client


@pytest.fixture
def dir_client() -> Iterator[_Clients]:
    clients = _Clients()
    yield clients
    for c in clients.made:
        c.close()


@pytest.fixture
def joined(dir_client: _Clients) -> Callable[[ServerProcess, str], DirClient]:
    """``joined(server, nick)`` -> a DirClient registered and announced (first PING sent,
    its catch-up drained)."""

    def make(server: ServerProcess, nickname: str) -> DirClient:
        c = dir_client(server, nickname)
        reply = c.register()
        assert isinstance(reply, wire.Keyword), reply
        c.ping(wire.EMPTY_DIGEST)
        assert c.recv_until(lambda m: isinstance(m, wire.Pong)) is not None
        return c

    return make


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()




@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two file-transfer managers, alice and bob, wired directly together (tests/test_files_*)."""
    p = Pair(tmp_path)
    yield p
    p.close()
