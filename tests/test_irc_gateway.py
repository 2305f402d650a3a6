"""The IRC gateway end to end: an IRC client (the ``irc`` package) on a real gateway over a
real engine, talking with an OpenLChat user at a real terminal, through a real server.py."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.irc_support import IrcUser, gateway_user, terminal_user
from tests.netns import REPO, client_env

fast_server = pytest.mark.parametrize("server", [{"ping_interval": 0.5}], indirect=True)


@fast_server
def test_irc_client_talks_with_a_terminal_user(server, tmp_path):
    with terminal_user(server, tmp_path / "b") as (bob, b_in, b_out), \
            gateway_user(server, tmp_path / "a") as (alice, gw):
        irc = IrcUser(gw.address, "whoever")
        try:
            welcome = irc.wait_type("welcome")
            assert welcome.target == "alice"  # the IRC nickname is the OpenLChat nickname
            irc.wait(lambda e: e.type == "join" and e.target == "#room")
            irc.wait(lambda e: e.type == "namreply" and "bob" in e.arguments[-1])
            # both ways in #room
            b_in.put("hello irc")
            irc.wait(lambda e: e.type == "pubmsg" and e.source.nick == "bob"
                     and e.arguments == ["hello irc"])
            irc.conn.privmsg("#room", "hi bob")
            b_out.wait_line(lambda x: x == "<alice> hi bob")
            # /me both ways
            irc.conn.action("#room", "waves")
            b_out.wait_line(lambda x: x == "* alice waves")
            b_in.put("/me dances")
            irc.wait(lambda e: e.type == "action" and e.arguments == ["dances"])
            # a new channel, joined by both, topic both ways
            irc.conn.join("#games")
            irc.wait(lambda e: e.type == "join" and e.target == "#games"
                     and e.source.nick == "alice")
            b_in.put("/join #games")
            irc.wait(lambda e: e.type == "join" and e.target == "#games"
                     and e.source.nick == "bob")
            irc.conn.privmsg("#games", "in games")
            b_out.wait_line(lambda x: x == "[#games] <alice> in games")
            irc.conn.topic("#games", "fun")
            b_out.wait_line(lambda x: x == "-!- #games topic: fun (set by alice)")
            b_in.put("/topic #games serious")
            irc.wait(lambda e: e.type == "topic" and e.arguments == ["serious"])
            # private both ways
            irc.conn.privmsg("bob", "just you")
            b_out.wait_line(lambda x: x == "*alice* just you")
            b_in.put("/msg alice and you")
            irc.wait(lambda e: e.type == "privmsg" and e.arguments == ["and you"])
            # whois shows the fingerprint and whether it is verified
            irc.conn.whois("bob")
            fp = irc.wait_type("276")
            assert bob.own_fingerprint() in fp.arguments[-1]
            assert "NOT verified" in irc.wait_type("320").arguments[-1]
            # away: 306, and a private message to us answers with the away text
            irc.conn.send_raw("AWAY :at lunch")
            irc.wait_type("nowaway")
            b_in.put("/msg alice are you there?")
            b_out.wait_line(lambda x: x == "-!- alice is away: at lunch")
            irc.conn.send_raw("AWAY")
            irc.wait_type("unaway")
            # rename: peers see a rename, not a leave and a join
            irc.conn.nick("alicia")
            irc.wait(lambda e: e.type == "nick" and e.target == "alicia")
            b_out.wait_line(lambda x: x == "-!- alice is now known as alicia")
            # a peer's rename is a NICK, not a QUIT and a JOIN
            b_in.put("/nick bobby")
            # (under heavy load the chat layer may show it as a leave and a join: its RENAME
            # can arrive after the directory moved; the gateway shows what the engine says)
            irc.wait(lambda e: (e.type == "nick" and e.source.nick == "bob"
                                and e.target == "bobby")
                     or (e.type == "join" and e.source.nick == "bobby"))
            end = time.monotonic() + 5
            while "bobby" not in alice.roster() and time.monotonic() < end:
                time.sleep(0.02)  # until the directory has moved bob's registration too
            irc.conn.privmsg("#room", "hi bobby")
            b_out.wait_line(lambda x: x == "<alicia> hi bobby")
            b_in.put("/msg #room bobby here")
            irc.wait(lambda e: e.type == "pubmsg" and e.source.nick == "bobby")
            if any(e.type == "nick" and e.source.nick == "bob" for e in irc.events):
                assert not [e for e in irc.events if e.type == "quit"]
            # quit, and nobody on the OpenLChat side notices; reattach: history replayed
            irc.conn.quit("brb")
            irc.wait(lambda e: e.type == "disconnect")
        finally:
            irc.close()
        b_in.put("/msg #room while you were out")
        b_in.put("/msg alicia psst")
        end = time.monotonic() + 5  # both stored (and their events taken) while detached
        while time.monotonic() < end and not (
                [x for x in alice.chat.history("#room", 3) if x.text == "while you were out"]
                and [x for x in alice.chat.history("bobby", 3) if x.text == "psst"]):
            time.sleep(0.02)
        time.sleep(0.3)
        again = IrcUser(gw.address, "alicia")
        try:
            assert again.wait_type("welcome").target == "alicia"
            again.wait(lambda e: e.type == "join" and e.target == "#games")
            replay = again.wait(lambda e: e.type == "pubmsg" and e.target == "#room"
                                and e.arguments[0].endswith("] while you were out"))
            assert re.match(r"\[\d\d:\d\d\] ", replay.arguments[0])
            again.wait(lambda e: e.type == "pubmsg" and e.arguments[0].endswith("] hello irc"))
            again.wait(lambda e: e.type == "privmsg" and e.arguments[0].endswith("psst"))
            # one IRC client at a time: a second one is told so and closed
            third = IrcUser(gw.address, "intruder")
            try:
                err = third.wait(lambda e: e.type == "error")
                assert "another IRC client" in err.target
            finally:
                third.close()
            again.conn.privmsg("#room", "still here")
            b_out.wait_line(lambda x: x == "<alicia> still here")
        finally:
            again.close()
        text = b_out.getvalue()
        assert "alicia left" not in text and "alice left" not in text


def _raw(address):
    s = socket.create_connection(address, timeout=5)
    return s


def _read_until(sock, pattern: bytes, timeout: float = 5.0) -> bytes:
    end = time.monotonic() + timeout
    got = b""
    while pattern not in got and time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        got += chunk
    return got


@fast_server
def test_hostile_irc_input_never_crashes_the_gateway(server, tmp_path, caplog):
    with terminal_user(server, tmp_path / "b") as (bob, b_in, b_out), \
            gateway_user(server, tmp_path / "a") as (alice, gw):
        s = _raw(gw.address)
        s.sendall(b"NICK x\r\nUSER x 0 * :x\r\n")
        assert b" 376 " in _read_until(s, b" 366 ")
        s.sendall(b"PRIVMSG #room :" + b"A" * 5000 + b"\r\n")  # overlong
        assert b" 417 " in _read_until(s, b" 417 ")
        s.sendall(b"FROBNICATE now\r\n\x00\xff\xfe garbage\r\n:\r\n@@@ \r\n")
        assert b" 421 alice FROBNICATE" in _read_until(s, b" 421 ")
        s.sendall(b"PRIVMSG #room :caf\xe9 \xff\xfe bytes\r\n")  # not UTF-8
        b_out.wait_line(lambda x: x.startswith("<alice> caf"))
        s.sendall(b"PING :still\r\n")
        assert b"PONG" in _read_until(s, b"still")
        # a flood: disconnected with a reason, the gateway lives on
        with contextlib.suppress(OSError):
            s.sendall(b"PING :x\r\n" * 200_000)
        assert b"Excess Flood" in _read_until(s, b"Excess Flood", 15)
        _read_until(s, b"no such thing")  # until the gateway closes it
        s.close()
        again = _raw(gw.address)
        again.sendall(b"NICK x\r\nUSER x 0 * :x\r\nPRIVMSG #room :after the flood\r\n")
        assert b" 001 " in _read_until(again, b" 366 ")
        b_out.wait_line(lambda x: x == "<alice> after the flood")
        again.close()
    bugs = [r for r in caplog.records if r.name.startswith("client.irc") and r.levelno >= 40]
    assert not bugs, bugs  # hostile input is never one of our errors


@fast_server
def test_a_public_address_needs_a_password(server, tmp_path):
    from client.irc.server import GatewayError, IrcGateway
    from tests.irc_fakes import FakeChat

    with pytest.raises(GatewayError):
        IrcGateway(FakeChat(), None, ("0.0.0.0", 0))  # type: ignore[arg-type]
    with gateway_user(server, tmp_path / "a", password="sesame") as (alice, gw):
        s = _raw(gw.address)
        s.sendall(b"PASS nope\r\nNICK x\r\nUSER x 0 * :x\r\n")
        assert b" 464 " in _read_until(s, b"ERROR")
        s.close()
        ok = IrcUser(gw.address, "x", password="sesame")
        try:
            ok.wait_type("welcome")
        finally:
            ok.close()


@fast_server
def test_python_m_client_irc(server, tmp_path):
    base = [sys.executable, "-m", "client", "--server", f"127.0.0.1:{server.port}", "--nick",
            "carol", "--config-dir", str(tmp_path), "--no-files"]
    refused = subprocess.run([*base, "--irc", "0.0.0.0:6667"], cwd=REPO, env=client_env(),
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "needs --irc-password" in refused.stderr
    proc = subprocess.Popen([*base, "--irc", "0"], cwd=REPO, env=client_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"IRC gateway for carol listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line + proc.stderr.read()
        irc = IrcUser(("127.0.0.1", int(match.group(1))), "carol")
        try:
            assert irc.wait_type("welcome").target == "carol"
        finally:
            irc.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_gateway_keeps_what_comes_while_detached():
    """The TCP edge alone, over a stand-in ChatApi and a plain event queue."""
    import queue

    from client.chat import events as ev
    from client.irc.server import IrcGateway
    from tests.irc_fakes import FakeChat, signed

    events: queue.Queue = queue.Queue()
    gw = IrcGateway(FakeChat(), events, ("127.0.0.1", 0))
    gw.start()
    try:
        events.put(ev.PrivateLine("bob", "while away", signed("bob", "alice", "while away")))
        events.put(ev.ChannelMessage("#room", "bob", "in history", signed("bob", "#room", "x")))
        end = time.monotonic() + 5
        while gw.stats["events"] < 2 and time.monotonic() < end:
            time.sleep(0.01)  # both taken while nobody is attached
        first = IrcUser(gw.address, "alice")
        try:
            first.wait(lambda e: e.type == "privmsg" and e.arguments[0].endswith("while away"))
            assert not [e for e in first.events
                        if e.type == "pubmsg" and e.arguments[0] == "in history"]
            second = IrcUser(gw.address, "alice")
            try:
                assert "another IRC client" in second.wait(lambda e: e.type == "error").target
            finally:
                second.close()
            events.put(ev.Action("bob", "waves", None, signed("bob", "alice", "waves")))
            first.wait(lambda e: e.type == "action" and e.arguments == ["waves"])
            first.conn.quit()
            first.wait(lambda e: e.type == "disconnect")
        finally:
            first.close()
        time.sleep(0.3)
        events.put(ev.AwayReply("bob", "gone"))
        end = time.monotonic() + 5
        while gw.stats["events"] < 4 and time.monotonic() < end:
            time.sleep(0.01)
        again = IrcUser(gw.address, "alice")
        try:
            again.wait(lambda e: e.type == "away" and e.arguments == ["bob", "gone"])
        finally:
            again.close()
    finally:
        gw.close()
