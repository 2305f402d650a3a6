"""Our side of the directory's relay (``server.py --relay``), sans-IO: asking for it, the pairs
we have, and the bytes of relayed datagrams (codec: ``models.relay_wire``).

The engine uses the relay only for a peer no direct candidate reaches (the path manager says
``NoPath``/``PathLost`` after its probes): ``want(peer, now)`` gives the request to send to the
server (at most once per ``retry`` seconds per peer). The server invites the other client;
once both asked, both get ``RELAY peer pair`` and the pair becomes a *relay candidate* for the
path manager: a pseudo address ``("relay", n)`` (never a real one) of kind ``PathKind.RELAY``,
which it uses only while nothing better answers and leaves as soon as a direct path opens.

Sending to a relay candidate: ``wrap(addr, datagram)`` gives the bytes for the server's
address. Receiving from the server's address: ``unwrap(data)`` gives (peer, pseudo address,
the peer datagram) for the transport, which authenticates it as usual: the relay sees only
who talks to whom and how much, never the content.

Why a peer cannot be reached, in plain words: ``unreachable_reason(peer, behind_nat)``.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

from models import relay_wire as rw
from models.errors import ProtocolError

Addr = tuple[str, int]
RELAY_HOST = "relay"


class RelayState(enum.Enum):
    ASKED = "asked"          # request sent, no answer yet
    WAITING = "wait"         # the server invited the peer; it has not asked yet
    UP = "up"
    OFF = "off"              # the server does not relay
    UNKNOWN = "unknown"      # the server does not know the peer
    FULL = "full"            # the server relays too many pairs already


@dataclass(frozen=True)
class RelayUp:
    """A relay candidate for ``peer``: hand ``addr`` to the path manager as PathKind.RELAY."""
    peer: str
    addr: Addr


@dataclass(frozen=True)
class RelayInvited:
    """``peer`` asked the server for a relay with us (ask too, if no direct path works)."""
    peer: str


@dataclass
class _Entry:
    state: RelayState
    asked_at: float
    pair: bytes | None = None
    addr: Addr | None = None


class RelayClient:
    """One per engine; the engine thread drives it."""

    def __init__(self, *, retry: float = 5.0, max_peers: int = 256) -> None:
        self.retry = retry
        self.max_peers = max_peers
        self._peers: dict[str, _Entry] = {}
        self._by_pair: dict[bytes, str] = {}
        self._by_addr: dict[Addr, str] = {}
        self._numbers = itertools.count(1)
        self.dropped = 0

    # ---- control -----------------------------------------------------------------------------

    def want(self, keyword: str, nickname: str, peer: str, now: float) -> bytes | None:
        """The request to send the server for ``peer``, or None (already up, or asked lately)."""
        e = self._peers.get(peer)
        if e is not None and (e.state is RelayState.UP or now - e.asked_at < self.retry):
            return None
        if e is None and len(self._peers) >= self.max_peers:
            return None
        try:
            data = rw.encode(rw.RelayRequest(keyword, nickname, peer))
        except ValueError:
            return None
        if e is None:
            self._peers[peer] = _Entry(RelayState.ASKED, now)
        else:
            e.asked_at = now
            if e.state is not RelayState.OFF:
                e.state = RelayState.ASKED
        return data

    def on_server(self, data: bytes, keyword: str) -> RelayUp | RelayInvited | None:
        """A datagram from the server's address that ``rw.is_relay`` recognised."""
        try:
            msg = rw.decode(data)
        except ProtocolError:
            self.dropped += 1
            return None
        if msg.keyword != keyword or isinstance(msg, rw.RelayRequest):
            self.dropped += 1
            return None
        if isinstance(msg, rw.RelayInvite):
            return RelayInvited(msg.nickname)
        e = self._peers.get(msg.target)
        if e is None:            # an answer to nothing we asked
            self.dropped += 1
            return None
        if isinstance(msg, rw.RelayRefused):
            e.state = RelayState(msg.reason)
            return None
        if e.pair is not None and e.pair != msg.pair:
            self._drop_pair(e)
        e.state, e.pair = RelayState.UP, msg.pair
        if e.addr is None:
            e.addr = (RELAY_HOST, next(self._numbers))
        self._by_pair[msg.pair] = msg.target
        self._by_addr[e.addr] = msg.target
        return RelayUp(msg.target, e.addr)

    def forget(self, peer: str) -> None:
        """The peer left: its pair is of no use any more (the server ends it too)."""
        e = self._peers.pop(peer, None)
        if e is not None:
            self._drop_pair(e)

    def _drop_pair(self, e: _Entry) -> None:
        if e.pair is not None:
            self._by_pair.pop(e.pair, None)
        if e.addr is not None:
            self._by_addr.pop(e.addr, None)
        e.pair = None

    def has_pairs(self) -> bool:
        return bool(self._by_pair)

    def relayed(self) -> list[str]:
        """Peers we have a relay pair with, sorted."""
        return sorted(self._by_pair.values())

    # ---- data --------------------------------------------------------------------------------

    @staticmethod
    def is_relay_addr(addr: Addr) -> bool:
        return addr[0] == RELAY_HOST

    def wrap(self, addr: Addr, datagram: bytes) -> bytes | None:
        """Bytes for the server carrying ``datagram`` to the peer behind relay ``addr``."""
        peer = self._by_addr.get(addr)
        e = self._peers.get(peer) if peer is not None else None
        if e is None or e.pair is None:
            return None
        return rw.wrap(e.pair, datagram)

    def unwrap(self, data: bytes) -> tuple[str, Addr, bytes] | None:
        """(peer, relay address, peer datagram) of relayed data from the server, or None."""
        peer = self._by_pair.get(bytes(data[1:rw.DATA_HEADER]))
        if peer is None or not rw.is_data(data):
            self.dropped += 1
            return None
        e = self._peers[peer]
        assert e.addr is not None
        return peer, e.addr, data[rw.DATA_HEADER:]

    # ---- for people ----------------------------------------------------------------------------

    def state(self, peer: str) -> RelayState | None:
        e = self._peers.get(peer)
        return None if e is None else e.state

    def unreachable_reason(self, peer: str, behind_nat: bool) -> str:
        """Why ``peer`` cannot be reached, in words for the user."""
        state = self.state(peer)
        nat = "both behind strict NAT" if behind_nat else "its NAT or firewall lets nothing in"
        if state is RelayState.OFF:
            return f"no direct path to {peer}: {nat}; the server does not relay"
        if state is RelayState.FULL:
            return f"no direct path to {peer}: {nat}; the server's relay is full"
        if state is RelayState.UNKNOWN:
            return f"no direct path to {peer}, and the server does not know {peer}"
        if state in (RelayState.ASKED, RelayState.WAITING):
            return f"no direct path to {peer}: {nat}; waiting for {peer} to accept a relay"
        return f"no direct path to {peer}: {nat}"
