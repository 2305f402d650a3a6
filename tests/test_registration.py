"""client.serverlink.registration against a scripted TCP peer (for replies a real server
never gives) and against the real server.py (the normal path, reclaim, errors)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from client.errors import RegistrationError, ServerUnreachable
from client.serverlink.registration import enroll, register
from client.serverlink.session import SavedSession
from models import directory_wire as wire
from models.dirauth import Agreement, unb64


class Scripted:
    """A one-connection TCP server answering each request line with the next scripted reply
    (None: say nothing)."""

    def __init__(self, replies: list[bytes | None]) -> None:
        self.replies = list(replies)
        self.received: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            buf = b""
            while self.replies:
                while b"\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                self.received.append(line)
                reply = self.replies.pop(0)
                if reply is None:
                    time.sleep(2)
                    return
                conn.sendall(reply)
            # CHANNEL_SWITCH: read it, then close
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(4096)

    def close(self) -> None:
        self.listener.close()


def test_full_exchange_with_extensions():
    srv = Scripted([b"KEYWORD abc123\n", b"INFO ping_interval=2.5 nickname=Bob\n",
                    b"REFERENCE 2 amy 127.0.0.1 4000 Bob 127.0.0.1 4001\n"])
    try:
        reg = register(srv.address, "bob", timeout=3)
    finally:
        srv.close()
    assert reg.keyword == "abc123" and reg.nickname == "Bob"
    assert reg.ping_interval == 2.5 and reg.extended and not reg.reclaimed
    assert reg.roster == (("amy", "127.0.0.1", 4000), ("Bob", "127.0.0.1", 4001))
    assert srv.received[:3] == [b"CONNECT bob", b"INFO?", b"REFERENCE?"]


def test_reclaim_sends_keyword_and_reports_it():
    srv = Scripted([b"KEYWORD old1\n", b"INFO ping_interval=10\n", b"REFERENCE 0\n"])
    try:
        reg = register(srv.address, "bob", keyword="old1", timeout=3)
    finally:
        srv.close()
    assert srv.received[0] == b"CONNECT bob old1"
    assert reg.reclaimed and reg.nickname == "bob"


def test_design_only_server_without_info():
    srv = Scripted([b"KEYWORD k\n", b"ERROR UNKNOWN_COMMAND unknown command INFO?\n",
                    b"REFERENCE 0\n"])
    try:
        reg = register(srv.address, "bob", timeout=3)
    finally:
        srv.close()
    assert not reg.extended and reg.ping_interval == 10.0


def test_error_reply_raises_registration_error():
    srv = Scripted([b"ERROR NICK_TAKEN nickname bob is taken\n"])
    try:
        with pytest.raises(RegistrationError) as info:
            register(srv.address, "bob", timeout=3)
    finally:
        srv.close()
    assert info.value.code == "NICK_TAKEN" and "taken" in info.value.text


def test_garbage_reply_is_a_registration_error():
    srv = Scripted([b"\xff\xfe garbage\n"])
    try:
        with pytest.raises(RegistrationError) as info:
            register(srv.address, "bob", timeout=3)
    finally:
        srv.close()
    assert info.value.code == "BAD_REPLY"


def test_silent_server_times_out():
    srv = Scripted([None])
    t0 = time.monotonic()
    try:
        with pytest.raises(ServerUnreachable):
            register(srv.address, "bob", timeout=0.5)
    finally:
        srv.close()
    assert time.monotonic() - t0 < 2


def test_nothing_listening_is_unreachable():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ServerUnreachable):
        register(("127.0.0.1", port), "bob", timeout=1)


def test_nickname_with_space_refused_before_sending():
    with pytest.raises(RegistrationError) as info:
        register(("127.0.0.1", 9), "a b", timeout=0.5)
    assert info.value.code == "BAD_NICK"


# ---------------------------------------------------------------- the real server


def test_real_server_register_reclaim_and_errors(server):
    addr = server.address
    reg = register(addr, "Вася", timeout=3)
    assert reg.extended and reg.nickname == "Вася"
    again = register(addr, "вася", keyword=reg.keyword, timeout=3)
    assert again.reclaimed and again.keyword == reg.keyword
    with pytest.raises(RegistrationError) as info:
        register(addr, "ВАСЯ", timeout=3)
    assert info.value.code == "NICK_TAKEN"
    with pytest.raises(RegistrationError) as info:
        register(addr, "x" * 30, timeout=3)
    assert info.value.code == "BAD_NICK"


def test_the_key_agreed_is_saved_even_if_the_exchange_fails_after_keyword(tmp_path):
    class Agreeing(Scripted):
        """KEYWORD with a key agreed on the client's offer, then silence."""

        def __init__(self) -> None:
            super().__init__([None])

        def _serve(self) -> None:
            conn, _ = self.listener.accept()
            with conn:
                line = conn.makefile("rb").readline()
                offer = wire.decode_request(line)
                self.agreement = Agreement.answer(offer.x25519)
                conn.sendall(wire.encode_line(wire.Keyword("k" * 24, self.agreement.x25519)))
                time.sleep(2)

    srv = Agreeing()
    session = SavedSession(tmp_path, ("h", 1))
    try:
        with pytest.raises(ServerUnreachable):
            enroll(srv.address, "alice", session, timeout=0.5)
    finally:
        srv.close()
        session.release()
    saved = SavedSession(tmp_path, ("h", 1)).load_saved("alice")
    assert saved is not None and saved.keyword == "k" * 24
    assert saved.mac is not None and saved.mac[1] == 0
    assert unb64(saved.mac[0]) == srv.agreement.key("k" * 24)  # what the server now holds
