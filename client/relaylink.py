"""The server's relay on the engine thread: asking for it when no direct path answers, relay
candidates for the path manager, relayed datagrams in and out, and the reason in plain words
when a peer cannot be reached at all. The sans-IO part is ``client.reach.relay.RelayClient``.

Who calls what (all on the engine thread):

* the path manager's ``NoPath``/``PathLost`` for a peer -> ``no_path(peer, now)``: a RELAY?
  request to the server (at most every few seconds per peer), and a notice with the reason
  once the server has said it cannot relay (``RELAY- off``/``full``/``unknown``);
* a datagram from the server's address -> ``on_server_datagram(data, now)``: True if it was the
  relay's (RELAY, RELAY-, RELAY+, or relayed data, which goes to the transport as a datagram
  from the peer's relay candidate and, once authenticated, to ``heard``);
* sending a peer datagram to an address -> ``send(datagram, addr)``: True if ``addr`` is a
  relay candidate (then the datagram went to the server, wrapped);
* a peer left -> ``forget(peer)``.

The relay candidate is PathKind.RELAY for the path manager: used only while no LAN or direct
candidate answers; the manager keeps trying those while we talk, and switches back as soon as
one opens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from client import events as ev
from client.contracts import Transport
from client.reach.nat import NatWatch
from client.reach.paths import PathKind, PathManager
from client.reach.relay import RelayClient, RelayInvited, RelayState, RelayUp
from client.udp import UdpEdge
from models import relay_wire as rw

log = logging.getLogger(__name__)

Addr = tuple[str, int]


class ServerInfo(Protocol):
    """How the directory knows us, and where it is (``client.reachlink.ServerView`` fits)."""

    @property
    def addr(self) -> Addr: ...

    @property
    def keyword(self) -> str: ...

    @property
    def nickname(self) -> str: ...

    @property
    def online(self) -> bool: ...


@dataclass(frozen=True)
class Credentials:
    addr: Addr
    keyword: str
    nickname: str
    online: bool = True


class Reach(Protocol):
    """What ``tcp_hopeless`` reads (``client.reachlink.ReachLink`` fits)."""

    @property
    def paths(self) -> PathManager: ...

    @property
    def nat(self) -> NatWatch: ...


def tcp_hopeless(reach: Reach, peer: str) -> bool:
    """On the engine thread: is TCP known not to work with ``peer``? Its path is relayed, or
    we reach it through our NAT (a connection toward us would not get in): file transfers
    then go over the UDP path at once (``FileTransfers(udp_first=...)``)."""
    info = reach.paths.path_of(peer)
    return info is not None and (info.kind == PathKind.RELAY or info.kind == PathKind.DIRECT
                                 and bool(reach.nat.behind_nat))


class RelayLink:
    def __init__(self, udp: UdpEdge, transport: Transport, *,
                 server: Callable[[], ServerInfo | None], paths: PathManager, nat: NatWatch,
                 heard: Callable[[str, Addr, float, int], None],
                 emit: Callable[[ev.Event], None], client: RelayClient | None = None) -> None:
        self.udp = udp
        self.transport = transport
        self.client = client or RelayClient()
        self._view = server
        self._paths = paths
        self._nat = nat
        self._heard = heard
        self._emit = emit
        self._told: dict[str, RelayState] = {}   # the reason shown per peer, once each
        self._wanted: set[str] = set()            # peers with no direct path, as of now

    def _server(self) -> ServerInfo | None:
        view = self._view()
        return view if view is not None and view.online else None

    def no_path(self, peer: str, now: float) -> None:
        """No direct candidate of ``peer`` answers: ask for a relay (or say why not)."""
        self._wanted.add(peer)
        self._tell(peer)
        view = self._server()
        if view is None:
            return
        request = self.client.want(view.keyword, view.nickname, peer, now)
        if request is not None:
            self.udp.send(request, view.addr)

    def on_server_datagram(self, data: bytes, now: float) -> bool:
        if rw.is_data(data):
            got = self.client.unwrap(data)
            if got is not None:
                peer, addr, inner = got
                if self.transport.unwrap(peer, inner, now):
                    self._heard(peer, addr, now, len(inner))
            return True
        if not rw.is_relay(data):
            return False
        view = self._server()
        if view is None:
            return True
        result = self.client.on_server(data, view.keyword)
        if isinstance(result, RelayUp):
            log.info("relay to %s ready", result.peer)
            self._paths.add_candidate(result.peer, result.addr, PathKind.RELAY, now)
        elif isinstance(result, RelayInvited):
            # the other side found no direct path to us: agree only if ours fails too (the
            # path manager then calls no_path); if we already know, agree at once
            if result.peer in self._wanted:
                self.no_path(result.peer, now)
        else:
            for peer in list(self._wanted):
                self._tell(peer)
        return True

    def send(self, datagram: bytes, addr: Addr) -> bool:
        if not self.client.is_relay_addr(addr):
            return False
        view = self._server()
        wrapped = self.client.wrap(addr, datagram)
        if wrapped is not None and view is not None:
            self.udp.send(wrapped, view.addr)
        return True

    def send_to(self, datagram: bytes, addr: Addr) -> None:
        """One datagram to one candidate of a peer, a relay candidate or a real address."""
        if not self.send(datagram, addr):
            self.udp.send(datagram, addr)

    def take_relayed(self, out: list[tuple[str, bytes]], path: dict[str, Addr]
                     ) -> list[tuple[str, bytes]]:
        """Send those of ``out`` whose path is the relay; the others, to send directly."""
        if not self.client.has_pairs():
            return out      # the hot path: nobody relayed
        direct = []
        for peer, datagram in out:
            if not self.send(datagram, path[peer]):
                direct.append((peer, datagram))
        return direct

    def display(self, addr: Addr) -> Addr:
        """What to show for a path's address: the server's for a relay candidate."""
        view = self._server() if self.client.is_relay_addr(addr) else None
        return addr if view is None else view.addr

    def report(self) -> list[str]:
        """``/netcheck`` lines: the relays we use, and why peers cannot be reached."""
        lines = [f"relay to {peer}: ready" for peer in self.client.relayed()]
        lines += [why for peer in sorted(self._wanted) if (why := self.reason(peer))]
        return lines

    def path_found(self, peer: str) -> None:
        """A path (direct or relayed) answers: no reason to show any more."""
        self._wanted.discard(peer)
        self._told.pop(peer, None)

    def forget(self, peer: str) -> None:
        self._wanted.discard(peer)
        self._told.pop(peer, None)
        self.client.forget(peer)

    def reason(self, peer: str) -> str | None:
        """Why ``peer`` has no path, in plain words, or None when nothing is known against it."""
        if peer not in self._wanted or self.client.state(peer) is RelayState.UP:
            return None
        return self.client.unreachable_reason(peer, bool(self._nat.behind_nat))

    def _tell(self, peer: str) -> None:
        state = self.client.state(peer)
        if state in (RelayState.OFF, RelayState.FULL, RelayState.UNKNOWN) \
                and self._told.get(peer) is not state:
            self._told[peer] = state
            self._emit(ev.PeerUnreachable(peer, self.client.unreachable_reason(
                peer, bool(self._nat.behind_nat))))
