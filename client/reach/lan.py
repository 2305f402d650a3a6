"""LAN discovery, the socket edge: announce ourselves and hear others (one thread).

The pure parts are in ``discovery`` (codec, ``Announcer``) and ``lancache`` (the cache); why a
beacon of our own rather than mDNS is said in ``discovery``'s docstring. This module only
opens the socket, enumerates interfaces (``ifaddr``: the cross-platform part we do not write),
and runs a loop: wait for a datagram or the next deadline, feed the cache, send when due.

One UDP socket, bound to ``("", port)`` with SO_REUSEADDR so every client and server on a host
can share the discovery port (Linux and Windows deliver multicast and broadcast to each of
them). It joins ``MCAST_GROUP`` on every IPv4 interface and sends each announcement, per
interface, to the group and to that interface's directed broadcast address (the fallback
where multicast is filtered). TTL 1: never beyond the link.

Results go to ``deliver(events)``, called on the discovery thread -- the engine passes a function
that only puts them on its queue (faces: the Tk thread drains its own queue). ``snapshot()``
gives the current peers and servers from any thread.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import ifaddr

from client.reach.discovery import DEFAULT_PORT, MCAST_GROUP, Announcement, Announcer
from client.reach.lancache import CacheLimits, DiscoveryCache, LanEvent, LanPeer, LanServer
from models.errors import ProtocolError

log = logging.getLogger(__name__)
REFRESH_INTERFACES = 30.0   # seconds between interface re-scans (laptops change networks)


@dataclass(frozen=True)
class Interface:
    ip: str
    broadcast: str


def lan_interfaces() -> list[Interface]:
    """Every non-loopback IPv4 address of this host with its directed broadcast address."""
    found: dict[str, Interface] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6: (address, flowinfo, scope) -- not announced on yet
            net = ipaddress.ip_network(f"{ip.ip}/{ip.network_prefix}", strict=False)
            if net.network_address.is_loopback or ip.ip in found:
                continue
            bcast = str(net.broadcast_address) if net.prefixlen < 31 else "255.255.255.255"
            found[ip.ip] = Interface(ip.ip, bcast)
    return list(found.values())


@dataclass(frozen=True)
class Identity:
    """Who we announce: a client (key + nickname + chat port) or a server (label + port)."""

    port: int
    name: str
    key: bytes | None = None     # None: we are a directory server


class LanDiscovery:
    def __init__(self, me: Identity, deliver: Callable[[list[LanEvent]], None], *,
                 port: int = DEFAULT_PORT, interval: float = 5.0,
                 limits: CacheLimits | None = None, group: str = MCAST_GROUP,
                 clock: Callable[[], float] = time.monotonic, listen_only: bool = False) -> None:
        self.me = me
        self.listen_only = listen_only  # hear servers and peers, never announce (connect screen)
        self.deliver = deliver
        self.port = port
        self.group = group
        self.clock = clock
        self.instance = os.urandom(8)
        self.cache = DiscoveryCache(me.key, self.instance, limits,
                                    own_nickname=me.name if me.key is not None else None)
        self.announcer = Announcer(start=clock(), interval=interval)
        self.interfaces: list[Interface] = []
        self._joined: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bad = 0
        self._sock = self._open()
        self._thread = threading.Thread(target=self._run, name="lan-discovery", daemon=True)

    # ------------------------------------------------------------------ public

    def start(self) -> LanDiscovery:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._sock.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> tuple[list[LanPeer], list[LanServer]]:
        with self._lock:
            return self.cache.peers(), self.cache.servers()

    def lan_addresses(self) -> list[str]:
        return [i.ip for i in self.interfaces]

    # ------------------------------------------------------------------ socket

    def _open(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            s.bind(("", self.port))
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        return s

    def _refresh_interfaces(self) -> None:
        self.interfaces = lan_interfaces()
        for iface in self.interfaces:
            if iface.ip in self._joined:
                continue
            mreq = socket.inet_aton(self.group) + socket.inet_aton(iface.ip)
            try:
                self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                self._joined.add(iface.ip)
            except OSError as exc:
                log.debug("cannot join %s on %s: %s", self.group, iface.ip, exc)

    def _announce(self, query: bool) -> None:
        addrs = tuple(i.ip for i in self.interfaces)[:8]
        data = Announcement(self.me.key is None, self.me.port, self.instance, self.me.name,
                            self.me.key, addrs, query).encode()
        for iface in self.interfaces:
            try:
                self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                      socket.inet_aton(iface.ip))
                self._sock.sendto(data, (self.group, self.port))
            except OSError as exc:
                log.debug("multicast on %s failed: %s", iface.ip, exc)
            try:
                self._sock.sendto(data, (iface.broadcast, self.port))
            except OSError as exc:
                log.debug("broadcast on %s failed: %s", iface.ip, exc)

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            now = self.clock()
            if now >= next_scan:
                self._refresh_interfaces()
                next_scan = now + REFRESH_INTERFACES
            query = self.announcer.poll(now)
            if query is not None and not self.listen_only:
                self._announce(query)
            with self._lock:
                events = self.cache.expire(now)
            if events:
                self.deliver(events)
            deadlines = [self.announcer.next_deadline(), next_scan]
            expiry = self.cache.next_deadline()
            if expiry is not None:
                deadlines.append(expiry)
            wait = min(max(0.0, min(deadlines) - self.clock()), 0.25)  # 0.25: notice close()
            try:
                ready, _, _ = select.select([self._sock], [], [], wait)
            except (OSError, ValueError):
                return  # closed under us
            if ready:
                self._drain()

    def _drain(self) -> None:
        for _ in range(64):  # bounded per wake-up, so announcing is never starved
            try:
                data, src = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionResetError:
                continue  # Windows reports an earlier ICMP port-unreachable here: harmless
            except OSError:
                return  # closed under us
            self._handle(data, src)

    def _handle(self, data: bytes, src: tuple[str, int]) -> None:
        now = self.clock()
        try:
            with self._lock:
                heard = self.cache.feed(data, src, now)
        except ProtocolError as exc:
            self._bad += 1
            if self._bad <= 10 or self._bad % 1000 == 0:
                log.warning("bad LAN announcement from %s (%d so far): %s", src[0], self._bad,
                            exc)
            return
        if heard.query:
            self.announcer.query_heard(now)
        if heard.events:
            self.deliver(heard.events)
