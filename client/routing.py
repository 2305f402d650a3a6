"""Which layer a received datagram belongs to.

Peer traffic (first byte 0xC1) is accepted only from a known candidate address of a peer (the
directory's address for it, or its LAN address: ``client.reachlink``) and goes to the transport,
which authenticates it; an authenticated datagram tells the path manager its source works.
Anything else must come from the server's address and goes to the reachability extension or
the server link (or is the PROBE from the server's probe port); our own wake-up byte is ignored;
the rest is counted and dropped.
"""

from __future__ import annotations

import logging

from client.contracts import Transport
from client.reachlink import ReachLink
from client.serverlink.link import ServerLink
from client.udp import UdpEdge
from models.peer_wire import MAGIC

log = logging.getLogger(__name__)

Address = tuple[str, int]

PEER_MAGIC = bytes((MAGIC,))  # first byte of every peer datagram
DRAIN_BATCH = 512  # datagrams handled before timers get a turn


class Router:
    def __init__(self, udp: UdpEdge, reach: ReachLink, transport: Transport,
                 server: ServerLink | None, stats: dict[str, int]) -> None:
        self._udp = udp
        self._reach = reach
        self._transport = transport
        self._server = server
        self._stats = stats

    def set_server(self, server: ServerLink | None) -> None:
        """A server took our registration (at start, or later from LAN mode)."""
        self._server = server

    def drain(self, now: float) -> None:
        """The ACK hot path of a room message: up to DRAIN_BATCH datagrams, then the layers
        process them together (the engine's pump). A peer datagram from a listed address goes
        straight to the transport here; everything else through ``_dispatch``."""
        nickname_at = self._reach.peer_at
        unwrap = self._transport.unwrap
        heard = self._reach.heard
        stats = self._stats
        received = 0
        for data, addr in self._udp.receive(DRAIN_BATCH):
            try:
                if data and data[0] == MAGIC and (peer := nickname_at(addr)) is not None:
                    received += 1
                    if unwrap(peer, data, now):
                        heard(peer, addr, now, len(data))
                else:
                    self._dispatch(data, addr, now)
            except Exception:  # our bug; one datagram must not take the engine down
                stats["internal_errors"] = stats.get("internal_errors", 0) + 1
                if stats["internal_errors"] <= 10:
                    log.exception("internal error handling a datagram from %s", addr)
        stats["received"] += received

    def _dispatch(self, data: bytes, addr: Address, now: float) -> None:
        if self._udp.is_wake(data, addr):
            return
        if data[:1] == PEER_MAGIC:
            peer = self._reach.peer_at(addr)
            if peer is None:
                self._drop("peer", addr, "datagram from an address nobody is listed at")
                return
            self._stats["received"] += 1
            if self._transport.unwrap(peer, data, now):
                self._reach.heard(peer, addr, now, len(data))
            return
        server = self._server
        if server is None or addr != server.server:
            if not self._reach.on_foreign(data, addr, now):
                self._drop("server", addr, "non-peer datagram not from the server")
            return
        if self._reach.on_server_datagram(data, now):
            return
        why = server.on_datagram(data, now)
        if why is not None:
            self._drop("server", addr, why)

    def _drop(self, which: str, addr: Address, why: str) -> None:
        key = f"{which}_dropped"
        n = self._stats[key] = self._stats[key] + 1
        if n <= 10 or n % 1000 == 0:  # log, but not a flood
            log.info("dropped datagram from %s:%d: %s (%d so far)", addr[0], addr[1], why, n)
