"""Every ERROR code of the TCP channel, and bad input on both channels."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

import pytest

from models import directory_wire as wire
from tests.conftest import TcpSession


def error_code(reply: object) -> str:
    assert isinstance(reply, wire.Error), reply
    return reply.code


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"CONNECT bad\x01nick\n", "BAD_NICK"),
        (b"CONNECT " + "Ва ся".encode() + b"\n", "BAD_ARGS"),
        (b"CONNECT " + b"x" * 25 + b"\n", "BAD_NICK"),
        (b"CONNECT a\xe2\x80\x8bb\n", "BAD_NICK"),  # zero-width space
        (b"CONNECT \xff\xfe\n", "BAD_ENCODING"),
        (b"HELLO\n", "UNKNOWN_COMMAND"),
        (b"\n", "UNKNOWN_COMMAND"),
        (b"CONNECT\n", "BAD_ARGS"),
        (b"CONNECT a b c\n", "BAD_ARGS"),
        (b"REFERENCE? now\n", "BAD_ARGS"),
        (b"REFERENCE?\n", "OUT_OF_ORDER"),
        (b"CHANNEL_SWITCH\n", "OUT_OF_ORDER"),
    ],
)
def test_request_errors_keep_the_connection(server, line: bytes, code: str) -> None:
    tcp = TcpSession(server.address)
    tcp.send(line)
    reply = tcp.reply()
    assert error_code(reply) == code
    assert reply.text  # a human-readable explanation
    # the connection is still usable
    assert isinstance(tcp.request(wire.Connect("survivor")), wire.Keyword)
    tcp.close()


def test_error_line_is_byte_exact(server) -> None:
    tcp = TcpSession(server.address)
    tcp.send(b"REFERENCE?\n")
    assert tcp.line() == b"ERROR OUT_OF_ORDER CONNECT first\n"
    tcp.close()


def test_nick_taken_case_and_width_insensitive(server) -> None:
    first = TcpSession(server.address)
    assert isinstance(first.request(wire.Connect("Вася")), wire.Keyword)
    for other in ("вася", "ВАСЯ"):
        tcp = TcpSession(server.address)
        assert error_code(tcp.request(wire.Connect(other))) == "NICK_TAKEN"
        tcp.close()
    first2 = TcpSession(server.address)
    assert isinstance(first2.request(wire.Connect("Ｅｖａｎ")), wire.Keyword)
    tcp = TcpSession(server.address)
    assert error_code(tcp.request(wire.Connect("evan"))) == "NICK_TAKEN"
    for t in (first, first2, tcp):
        t.close()


def test_connect_twice_is_out_of_order(server) -> None:
    tcp = TcpSession(server.address)
    assert isinstance(tcp.request(wire.Connect("once")), wire.Keyword)
    assert error_code(tcp.request(wire.Connect("twice"))) == "OUT_OF_ORDER"
    tcp.close()


def test_two_racers_exactly_one_wins(server) -> None:
    results: list[object] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        tcp = TcpSession(server.address)
        barrier.wait()
        results.append(tcp.request(wire.Connect("Racer")))
        tcp.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(isinstance(r, wire.Keyword) for r in results) == 1
    assert sorted(error_code(r) for r in results if isinstance(r, wire.Error)) == \
        ["NICK_TAKEN"] * 7


def test_line_too_long_closes(server) -> None:
    tcp = TcpSession(server.address)
    tcp.send(b"CONNECT " + b"x" * 2000)  # no newline at all
    assert error_code(tcp.reply()) == "LINE_TOO_LONG"
    assert tcp.closed()
    tcp = TcpSession(server.address)
    tcp.send(b"CONNECT " + b"x" * 1100 + b"\n")
    assert error_code(tcp.reply()) == "LINE_TOO_LONG"
    assert tcp.closed()


def test_crlf_accepted(server) -> None:
    tcp = TcpSession(server.address)
    tcp.send(b"CONNECT crlf\r\nREFERENCE?\r\n")
    assert isinstance(tcp.reply(), wire.Keyword)
    assert isinstance(tcp.reply(), wire.Reference)
    tcp.close()


def test_too_many_errors_closes(server) -> None:
    tcp = TcpSession(server.address)
    tcp.send(b"NOPE\n" * 20)
    codes = []
    while (line := tcp.line()) is not None:
        codes.append(error_code(wire.decode_reply(line)))
    assert codes == ["UNKNOWN_COMMAND"] * 8


@pytest.mark.parametrize("server", [{"extra_args": ("--register-timeout", "0.5")}],
                         indirect=True)
def test_slowloris_timeout(server) -> None:
    tcp = TcpSession(server.address)
    tcp.send(b"CONN")  # never finishes the line
    start = time.monotonic()
    assert error_code(tcp.reply()) == "TIMEOUT"
    assert tcp.closed()
    assert 0.3 < time.monotonic() - start < 3
    # a registration that finishes in time is fine
    fine = TcpSession(server.address)
    assert isinstance(fine.request(wire.Connect("quick")), wire.Keyword)
    fine.send(b"CHANNEL_SWITCH\n")
    assert fine.closed(1.0)


@pytest.mark.parametrize("server", [{"extra_args": ("--max-conns-per-ip", "3")}],
                         indirect=True)
def test_connection_cap_per_ip(server) -> None:
    held = [TcpSession(server.address) for _ in range(3)]
    for t in held:  # make sure the server has accepted all three
        assert isinstance(t.request(wire.InfoRequest()), wire.Info)
    extra = TcpSession(server.address)
    assert error_code(extra.reply()) == "TOO_MANY_CONNECTIONS"
    assert extra.closed()
    held[0].close()
    time.sleep(0.1)
    again = TcpSession(server.address)
    assert isinstance(again.request(wire.InfoRequest()), wire.Info)
    for t in held[1:] + [again]:
        t.close()


@pytest.mark.parametrize(
    "server", [{"extra_args": ("--register-rate", "0.5", "--register-burst", "3")}],
    indirect=True)
def test_registration_flood_is_throttled(server) -> None:
    codes = []
    for i in range(5):
        tcp = TcpSession(server.address)
        reply = tcp.request(wire.Connect(f"flood{i}"))
        codes.append("KEYWORD" if isinstance(reply, wire.Keyword) else error_code(reply))
        if isinstance(reply, wire.Error):
            assert "slow down" in reply.text
            assert tcp.closed()
        tcp.close()
    assert codes == ["KEYWORD"] * 3 + ["THROTTLED"] * 2


@pytest.mark.parametrize(
    "server", [{"ping_interval": 5.0, "extra_args": ("--db-timeout", "0.3")}], indirect=True)
def test_storage_error_at_run_time_and_recovery(server, joined) -> None:
    online = joined(server, "online")
    lock = sqlite3.connect(server.db_path, timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        tcp = TcpSession(server.address)
        reply = tcp.request(wire.Connect("blocked"))
        assert error_code(reply) == "STORAGE"
        # the client already online is still served while the database is locked
        online.ping(online.digest())
        assert online.recv_until(lambda m: isinstance(m, wire.Pong), timeout=3)
        tcp.close()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    tcp = TcpSession(server.address)
    assert isinstance(tcp.request(wire.Connect("blocked")), wire.Keyword)  # recovered
    tcp.close()
    rows = sqlite3.connect(server.db_path).execute("SELECT nickname FROM clients").fetchall()
    assert sorted(r[0] for r in rows) == ["blocked", "online"]


def test_garbage_on_both_channels_never_hurts(server, joined) -> None:
    a = joined(server, "steady")
    raw = socket.create_connection(server.address, timeout=3)
    raw.sendall(bytes(range(256)) * 3 + b"\n\x00\xff\n")
    raw.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    junk = [b"", b"\x00" * 100, b"x 1 PING", a.keyword.encode() + b" 99 PING steady",
            a.keyword.encode() + b" 12 PING stea\xffy", b"\xc1\x01\x20" + b"\x00" * 40,
            (a.keyword + " 34 REF_ADD 1 evil 127.0.0.1 6666").encode(),
            wire.encode_datagram(wire.Ping(a.keyword, "impostor", wire.EMPTY_DIGEST))]
    for data in junk * 20:
        udp.sendto(data, server.address)
    udp.close()
    a.ping(a.digest())
    pong = a.recv_until(lambda m: isinstance(m, wire.Pong))
    assert pong == wire.Pong(a.keyword, wire.EMPTY_DIGEST)
    assert "evil" not in a.roster
    assert not any("Traceback" in line for line in server.log_lines())
