"""An IPv6 server (``--host ::``) serves IPv6 clients only.

A dual-stack socket would list IPv4 clients as ``::ffff:a.b.c.d``, which their IPv4 peers cannot
send to: every message between them would fail without a word. IPv4 clients are refused instead.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from models import directory_wire as wire
from tests.conftest import ServerProcess, TcpSession


def ipv6_unavailable() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"no IPv6 loopback here: {exc}"
    return None


pytestmark = pytest.mark.skipif(ipv6_unavailable() is not None,
                                reason=ipv6_unavailable() or "")


def test_ipv6_wildcard_refuses_ipv4_and_serves_ipv6(
        server_factory: Callable[..., ServerProcess]) -> None:
    srv = server_factory(start=False)
    srv.host = "::"
    srv.start()
    assert srv.wait_for_log(rf"listening on \[::\]:{srv.port} ", timeout=1) is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    session = TcpSession(("::1", srv.port))
    try:
        reply = session.request(wire.Connect("alice"))
        assert isinstance(reply, wire.Keyword)
    finally:
        session.sock.close()
