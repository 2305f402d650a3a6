"""The real server.py over real sockets: the design's messages and the extensions."""

from __future__ import annotations

import signal

import pytest

from models import directory_wire as wire
from tests.conftest import TcpSession


def test_design_flow_two_clients(server, joined, dir_client) -> None:
    alice = joined(server, "Alice")
    bob = dir_client(server, "Вася")
    reply = bob.register()
    assert isinstance(reply, wire.Keyword) and len(reply.keyword) == 24
    assert bob.roster == {"Alice": ("127.0.0.1", alice.udp_port)}
    bob.ping()  # plain design PING: no reply expected
    msg = alice.recv_until(lambda m: isinstance(m, wire.RefAdd))
    assert msg == wire.RefAdd(alice.keyword, (wire.Entry("Вася", "127.0.0.1", bob.udp_port),))
    assert server.wait_for_log(rf"join Вася 127\.0\.0\.1:{bob.udp_port}")
    bob.quit()
    msg = alice.recv_until(lambda m: isinstance(m, wire.RefDel))
    assert msg == wire.RefDel(alice.keyword, ("Вася",))
    assert server.wait_for_log(r"leave Вася \(quit\)")


def test_reference_lists_only_announced_clients(server, joined, dir_client) -> None:
    joined(server, "one")
    silent = dir_client(server, "two")
    assert isinstance(silent.register(), wire.Keyword)  # registered, never PINGs
    third = dir_client(server, "three")
    third.register()
    assert set(third.roster) == {"one"}


def test_info_before_and_after_connect(server) -> None:
    tcp = TcpSession(server.address)
    assert tcp.request(wire.InfoRequest()) == wire.Info(1.0)
    assert isinstance(tcp.request(wire.Connect("Ｅｖａｎ")), wire.Keyword)
    assert tcp.request(wire.InfoRequest()) == wire.Info(1.0, "Evan")
    tcp.close()


@pytest.mark.parametrize("server", [{"ping_interval": 2.5}], indirect=True)
def test_info_fractional_interval(server) -> None:
    tcp = TcpSession(server.address)
    tcp.send(b"INFO?\r\n")
    assert tcp.line() == b"INFO ping_interval=2.5\n"
    tcp.close()


def test_pong_digest_matches_roster(server, joined) -> None:
    a = joined(server, "a")
    b = joined(server, "b")
    a.recv_until(lambda m: isinstance(m, wire.RefAdd))
    a.ping(a.digest())
    pong = a.recv_until(lambda m: isinstance(m, wire.Pong))
    assert pong == wire.Pong(a.keyword, a.digest())
    assert a.digest() == wire.roster_digest([wire.Entry("b", "127.0.0.1", b.udp_port)])
    b.ping(b.digest())
    assert b.recv_until(lambda m: isinstance(m, wire.Pong)) == wire.Pong(b.keyword, b.digest())


@pytest.mark.parametrize("server", [{"extra_args": ("--stats-interval", "0.2")}], indirect=True)
def test_periodic_and_on_demand_stats(server, joined) -> None:
    a = joined(server, "counted")
    a.send(b"garbage")
    assert server.wait_for_log(r"stats: online=1 registered=1 datagrams=\d+ .*dropped=1")
    start = len(server.log_lines())
    server.proc.send_signal(signal.SIGUSR1)
    assert server.wait_for_log(r"stats: online=1", start_index=start)
