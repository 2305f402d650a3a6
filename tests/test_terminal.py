"""The terminal face: line formats, input parsing, start-up errors, and a real in-process run
against server.py with stdin/stdout as in-memory streams."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import queue
import socket
import threading
import time
from pathlib import Path

import pytest

from client import events as ev
from client.__main__ import main
from client.__main__ import server_argument as parse_server
from client.chat import events as cev
from client.chat.lines import render_text
from client.engine import Engine
from client.terminal import COMMANDS, Terminal, format_event, unescape


@pytest.fixture(autouse=True)
def _log_dir(tmp_path_factory, monkeypatch):
    """main() logs to a file: keep it out of the user's real log directory."""
    monkeypatch.setenv("OPENLCHAT_LOG_DIR", str(tmp_path_factory.mktemp("log")))


def test_line_formats():
    assert format_event(ev.RoomMessage("alice", "hello")) == "<alice> hello"
    assert format_event(ev.PrivateMessage("alice", "hello")) == "*alice* hello"
    assert format_event(ev.Joined("bob")) == "-!- bob joined"
    assert format_event(ev.Left("bob")) == "-!- bob left"
    assert format_event(ev.NotDelivered("bob", "hello", 3)) == "-!- not delivered to bob: hello"
    assert format_event(ev.ServerLost()) == "-!- server unreachable, peers still reachable"
    assert format_event(ev.ServerBack()) == "-!- server back"
    assert format_event(ev.Reregistered()) is None
    warn = format_event(ev.KeyChanged("alice", "AAAA", "BBBB"))
    assert warn.startswith("-!- WARNING: alice") and "AAAA" in warn and "BBBB" in warn
    marked = format_event(ev.PrivateMessage("alice", "hi", 1, "UNVERIFIED KEY CHANGE"))
    assert marked.splitlines() == ["-!- WARNING: UNVERIFIED KEY CHANGE (alice)", "*alice* hi"]


def test_file_transfer_lines():
    assert format_event(ev.FileOffered(3, "bob", "a.txt", 123456)) == (
        "-!- bob offers file #3: a.txt (120.6 KiB); /accept 3 or /decline 3")
    assert format_event(ev.FileProgress(3, "bob", "a.txt", 500000, 2000000, 1.5e6, True)) == (
        "-!- file #3 a.txt to bob: 25% of 1.9 MiB, 1.4 MiB/s, 0:01 left")
    assert format_event(ev.FileDone(3, "bob", "a.txt", None, True)) == (
        "-!- file #3 a.txt sent to bob")
    assert format_event(ev.FileFailed(4, "bob", "b", "declined")) == (
        "-!- file #4 b (bob) failed: declined")


def test_multiline_rendering_and_escapes():
    assert render_text("<a> ", "one\ntwo\n three") == "<a> one\n  two\n   three"
    assert unescape(r"one\ntwo") == "one\ntwo"
    assert unescape(r"a\\nb") == "a\\nb"  # an escaped backslash keeps the n
    assert unescape("C:\\temp") == "C:\\temp"  # other backslashes stay
    assert unescape("trailing\\") == "trailing\\"


def test_parse_server():
    assert parse_server("example.org") == ("example.org", 7700)
    assert parse_server("10.0.0.1:9000") == ("10.0.0.1", 9000)
    assert parse_server("[::1]:7000") == ("::1", 7000)
    assert parse_server("[::1]") == ("::1", 7700)
    for bad in ("[::1", "[::1]7000", "[::1]x:7000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_server(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_server("host:99999")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_cannot_start_exits_non_zero_with_one_line(tmp_path):
    err = io.StringIO()
    code = main(["--headless", "--server", f"127.0.0.1:{closed_port()}", "--nick", "alice",
                 "--config-dir", str(tmp_path)], stdin=io.StringIO(""), stdout=io.StringIO(),
                stderr=err)
    assert code == 1
    lines = [x for x in err.getvalue().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_refused_nickname_exits_non_zero(server, tmp_path):
    err = io.StringIO()
    code = main(["--headless", "--server", f"127.0.0.1:{server.port}", "--nick", "x" * 40,
                 "--config-dir", str(tmp_path)], stdin=io.StringIO(""), stdout=io.StringIO(),
                stderr=err)
    assert code == 1
    assert "BAD_NICK" in err.getvalue()


def test_headless_needs_server_and_nick(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--headless"])
    assert info.value.code == 2


class Pipe(io.TextIOBase):
    """A stdin the test writes lines into."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False

    def put(self, line: str) -> None:
        with self._cond:
            self._lines.append(line + "\n")
            self._cond.notify_all()

    def close_input(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        with self._cond:
            while not self._lines:
                if self._eof:
                    raise StopIteration
                self._cond.wait()
            return self._lines.pop(0)


class Out(io.StringIO):
    def wait_line(self, predicate, timeout: float = 5.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.getvalue().splitlines():
                if predicate(line):
                    return line
            time.sleep(0.01)
        raise AssertionError(f"no such line in {self.getvalue()!r}")


@contextlib.contextmanager
def alice_at_a_terminal(server, tmp_path, *, encrypted: bool = True):
    """bob as a bare Engine, alice behind a Terminal fed by a pipe; alice leaves (end of
    input) and must exit 0."""
    bob = Engine(server.address, "bob", config_dir=tmp_path / "b", encrypted=encrypted)
    bob.start()
    alice = Engine(server.address, "alice", config_dir=tmp_path / "a", encrypted=encrypted)
    stdin, stdout = Pipe(), Out()
    alice.start()
    term = Terminal(alice, stdin, stdout)
    runner = threading.Thread(target=lambda: setattr(term, "code", term.run()))
    runner.start()
    try:
        yield alice, bob, stdin, stdout
    finally:
        stdin.close_input()
        runner.join(5)
        bob.close()
    assert term.code == 0


@pytest.mark.parametrize("server", [{"ping_interval": 0.5}], indirect=True)
def test_terminal_in_process(server, tmp_path):
    with alice_at_a_terminal(server, tmp_path, encrypted=False) as (alice, bob, stdin, stdout):
        stdin.put("/who")
        stdout.wait_line(lambda x: x == "-!- online (2): alice, bob")
        stdin.put(r"hello\nworld")
        stdin.put("/msg BOB psst")
        stdin.put("/msg nobody hi")
        stdin.put("/bogus")
        stdin.put("/whois bob")
        want = {("RoomMessage", "hello\nworld"), ("PrivateMessage", "psst")}
        texts: set[tuple[str, str]] = set()
        end = time.monotonic() + 5
        while not want <= texts and time.monotonic() < end:
            with contextlib.suppress(queue.Empty):
                e = bob.events.get(timeout=0.1)
                if hasattr(e, "text"):
                    texts.add((type(e).__name__, e.text))
        assert want <= texts
        stdout.wait_line(lambda x: x == "-!- no such nick: nobody is not online")
        stdout.wait_line(lambda x: x.startswith("-!- unknown command /bogus"))
        stdout.wait_line(lambda x: x.startswith("-!- bob at 127.0.0.1:"))
        bob.send_room("über ☕")
        stdout.wait_line(lambda x: x == "<bob> über ☕")
        stdin.put("x" * (65 * 1024))
        stdout.wait_line(lambda x: x.startswith("-!- message too long, not sent"))
        stdin.put("/send bob /etc/hostname")  # no file-transfer manager plugged in here
        stdout.wait_line(lambda x: x == "-!- file transfer is not available")
        stdin.put("/accept x")
        stdout.wait_line(lambda x: x == "-!- usage: /accept ID")
        stdin.put("/accept 99")
        stdout.wait_line(lambda x: x == "-!- no transfer 99")
        stdin.put("/help")
        stdout.wait_line(lambda x: x.startswith("  /whois NICK "))


def test_damaged_identity_key_is_a_one_line_error(server, tmp_path):
    (tmp_path / "identity.key").write_text("not a key\n")
    err = io.StringIO()
    code = main(["--headless", "--server", f"127.0.0.1:{server.port}", "--nick", "alice",
                 "--config-dir", str(tmp_path)], stdin=io.StringIO(""), stdout=io.StringIO(),
                stderr=err)
    assert code == 1
    lines = [x for x in err.getvalue().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "identity" in lines[0]
    from client.serverlink.registration import register

    assert register(server.address, "alice", timeout=3).keyword  # the nickname was never taken


@pytest.mark.parametrize("server", [{"ping_interval": 0.5}], indirect=True)
def test_whois_fetches_the_key_without_any_message(server, tmp_path):
    with alice_at_a_terminal(server, tmp_path) as (alice, bob, stdin, stdout):
        stdin.put("/verify nobody")
        stdout.wait_line(lambda x: x == "-!- no such nickname online: nobody")
        stdin.put("/whois BOB")  # fresh: no message ever exchanged, nothing pinned
        line = stdout.wait_line(lambda x: x.startswith("-!- bob at 127.0.0.1:"))
        assert line.endswith(f": fingerprint {bob.own_fingerprint()} (not verified)"), line
        stdin.put("/verify bob")
        stdout.wait_line(lambda x: x == "-!- bob's key is now marked as verified")
        assert alice.is_verified("bob")
        # and the other way round too: bob learnt alice's key from that handshake
        assert bob.whois("alice").fingerprint == alice.own_fingerprint()


def ipv6_server(server_factory):
    """server.py listening on ::1, or a skip where this machine has no IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    srv = server_factory(ping_interval=0.5, start=False)
    srv.host = "::1"
    return srv.start()


def test_headless_client_over_ipv6(server_factory, tmp_path):
    srv = ipv6_server(server_factory)
    bob = Engine(("::1", srv.port), "bob", config_dir=tmp_path / "b")
    bob.start()
    try:
        assert bob.address[0] == "::"  # the default bind follows the server's family
        out = io.StringIO()
        code = main(["--headless", "--server", f"[::1]:{srv.port}", "--nick", "alice",
                     "--config-dir", str(tmp_path / "a"), "--no-files"],
                    stdin=io.StringIO("/whois bob\nhello over IPv6\n"), stdout=out,
                    stderr=io.StringIO())
        assert code == 0
        assert f"-!- bob at [::1]:{bob.address[1]}: fingerprint {bob.own_fingerprint()} " \
               "(not verified)" in out.getvalue().splitlines()
        end = time.monotonic() + 5
        texts = []
        while "hello over IPv6" not in texts and time.monotonic() < end:
            with contextlib.suppress(queue.Empty):
                e = bob.events.get(timeout=0.1)
                # typed text goes to #room, a channel (issue 11): a signed chat line
                if isinstance(e, cev.ChannelMessage) and e.channel == "#room":
                    texts.append(e.text)
        assert "hello over IPv6" in texts
    finally:
        bob.close()


def test_the_last_progress_line_has_no_zero_rate():
    line = format_event(ev.FileProgress(3, "bob", "a.txt", 2000000, 2000000, 0.0, True))
    assert line == "-!- file #3 a.txt to bob: 100% of 1.9 MiB"


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command, _what in COMMANDS:
        assert command in out
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for command, _what in COMMANDS[1:]:
        assert f"`{command}`" in readme, command


def test_log_records_go_to_the_file_not_the_chat(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENLCHAT_LOG_DIR", str(tmp_path / "logs"))
    out, err = io.StringIO(), io.StringIO()
    code = main(["--headless", "--server", f"127.0.0.1:{server.port}", "--nick", "alice",
                 "--config-dir", str(tmp_path)], stdin=io.StringIO("hi\n"), stdout=out,
                stderr=err)
    assert code == 0
    logging.getLogger("client.test").warning("a record")
    assert "a record" not in out.getvalue() + err.getvalue()
    assert "a record" in (tmp_path / "logs" / "client.log").read_text(encoding="utf-8")
    assert all(line.startswith(("-!-", "<", "*", "  ")) for line in out.getvalue().splitlines())


def test_a_second_client_logs_to_a_file_of_its_own(tmp_path, monkeypatch):
    """Two clients of one user never share (and rotate) one log file: on Windows the rename
    fails while the other holds it open, and logging prints tracebacks into the console."""
    from client import __main__ as entry
    from client.locks import hold

    monkeypatch.setenv("OPENLCHAT_LOG_DIR", str(tmp_path / "logs"))
    first = hold(tmp_path / "logs" / "client.log")  # another client's lock on the shared file
    assert first is not None
    try:
        path = entry.setup_logging(0, io.StringIO())
        assert path is not None and path.name == f"client-{os.getpid()}.log"
        logging.getLogger("client.test").warning("mine alone")
        assert "mine alone" in path.read_text(encoding="utf-8")
    finally:
        entry.setup_logging(1, io.StringIO())  # let go of the file handler before tmp goes
        first.release()


def test_verbose_logs_to_stderr(tmp_path):
    err = io.StringIO()
    main(["--headless", "-v", "--server", f"127.0.0.1:{closed_port()}", "--nick", "alice",
          "--config-dir", str(tmp_path)], stdin=io.StringIO(""), stdout=io.StringIO(),
         stderr=err)
    logging.getLogger("client.test").warning("loud record")
    assert "loud record" in err.getvalue()
