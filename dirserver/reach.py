"""The reachability extension wired to sockets (issue 10): WHERE?/HERE, PROBE? (answered from a
second UDP socket, the *probe port*), NUDGE, and the LAN beacon that lets clients on the
server's own network find it with no ``--server``.

The rules live in ``models.reach_server.ReachService`` (sans-IO); here are only the sockets
and two greenlets. ``UdpSide.handle`` asks ``consume(data, addr)`` first for every datagram
that is not a PING fast-path hit (one ``split``: reach requests never look like PINGs), and
calls ``after_ping`` for PINGs while someone is watching its address (after a WHERE?).

The beacon is the clients' announcement (``client.reach.discovery``) with the server flag: the
same codec, sent to the multicast group and each interface's broadcast address every
``interval`` seconds, and answered at once (at most every 0.5 s) when a client's query is heard.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

import gevent
from gevent import socket as gsocket

from client.reach.discovery import DEFAULT_PORT, MCAST_GROUP, Announcement, Announcer, decode
from client.reach.lan import lan_interfaces
from models import reach_wire as rw
from models.directory import Directory, Registration
from models.errors import ProtocolError
from models.reach_server import Out, ReachService, Registered

log = logging.getLogger("openlchat.server")

Addr = tuple[str, int]


def _view(reg: Registration | None) -> Registered | None:
    if reg is None:
        return None
    addr = None if reg.addr is None else (reg.addr[0], reg.addr[1])
    auth = reg.auth
    return Registered(reg.nickname, reg.keyword, addr,
                      None if auth is None else auth.check_raw)


class ReachSide:
    def __init__(self, directory: Directory, now: Callable[[], float], host: str) -> None:
        self.now = now
        self.host = host
        self.service = ReachService(lambda kw: _view(directory.by_keyword.get(kw)),
                                    lambda canon: _view(directory.by_key.get(canon)))
        self.send: Callable[[bytes, Addr], None] = lambda data, addr: None
        self.probe_sock: socket.socket | None = None
        self.probe_port = 0

    def open_probe_socket(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = gsocket.socket(family, socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        self.probe_sock = sock
        self.probe_port = sock.getsockname()[1]

    def consume(self, data: bytes, addr: tuple) -> bool:
        """True if ``data`` was a reachability request (handled, answered or not)."""
        if not rw.is_reach(data):
            return False
        for out in self.service.on_datagram(data, (addr[0], addr[1]), self.now()):
            self._out(out)
        return True

    def after_ping(self, data: bytes, addr: tuple) -> None:
        if not self.service.watching:
            return
        keyword = data.split(b" ", 1)[0]
        for out in self.service.after_ping(keyword, (addr[0], addr[1]), self.now()):
            self._out(out)

    def _out(self, out: Out) -> None:
        if out.probe_port:
            if self.probe_sock is not None:
                with contextlib.suppress(OSError):
                    self.probe_sock.sendto(out.data, out.addr)
            return
        self.send(out.data, out.addr)

    def close(self) -> None:
        if self.probe_sock is not None:
            self.probe_sock.close()


class Beacon:
    """The server's LAN announcement (a greenlet); ``port`` is the server's TCP+UDP port."""

    def __init__(self, port: int, label: str, *, beacon_port: int = DEFAULT_PORT,
                 interval: float = 5.0) -> None:
        self.port = port
        self.label = label[:64]
        self.beacon_port = beacon_port
        self.instance = os.urandom(8)
        self.announcer = Announcer(start=time.monotonic(), interval=interval)
        self.sock = self._open()

    def _open(self) -> socket.socket:
        s = gsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        s.bind(("", self.beacon_port))
        for iface in lan_interfaces():
            mreq = socket.inet_aton(MCAST_GROUP) + socket.inet_aton(iface.ip)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        return s

    def start(self) -> list[gevent.Greenlet]:
        return [gevent.spawn(self._send_loop), gevent.spawn(self._listen_loop)]

    def _announce(self) -> None:
        interfaces = lan_interfaces()
        data = Announcement(True, self.port, self.instance, self.label,
                            addrs=tuple(i.ip for i in interfaces)[:8]).encode()
        for iface in interfaces:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                     socket.inet_aton(iface.ip))
                self.sock.sendto(data, (MCAST_GROUP, self.beacon_port))
            with contextlib.suppress(OSError):
                self.sock.sendto(data, (iface.broadcast, self.beacon_port))

    def _send_loop(self) -> None:
        while True:
            now = time.monotonic()
            if self.announcer.poll(now) is not None:
                self._announce()
            gevent.sleep(max(0.01, min(self.announcer.next_deadline() - time.monotonic(),
                                       0.25)))

    def _listen_loop(self) -> None:
        """Clients' queries make us announce now (bounded by the announcer's answer gap)."""
        while True:
            try:
                data, _src = self.sock.recvfrom(2048)
            except OSError:
                return
            try:
                ann = decode(data)
            except ProtocolError:
                continue
            if ann.query and ann.instance != self.instance:
                self.announcer.query_heard(time.monotonic())

    def close(self) -> None:
        self.sock.close()
