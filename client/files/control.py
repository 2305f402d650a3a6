"""The file-transfer control protocol, sans-IO: the table of transfers and its state changes.

Control payloads (OFFER, ACCEPT, DECLINE, CANCEL, REVERSE) and the clock (``tick(now)``) come
in; payloads to send, events for the user and work for the manager (stop a transfer, connect
back) come out. No sockets, threads or clocks here: the manager calls it under its lock and
carries the actions out after releasing it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

from client.events import FileOffered
from client.files import udpwire, wire
from client.files.names import sanitize_name
from client.files.state import Settings, State, Transfer
from models.errors import ProtocolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Send:
    peer: str
    payload: bytes


@dataclass(frozen=True)
class Emit:
    event: object


@dataclass(frozen=True)
class Stop:
    """End ``transfer``: report it, tell the peer if ``tell_peer``, stop its worker."""
    transfer: Transfer
    reason: str
    tell_peer: bool
    discard: bool = False


@dataclass(frozen=True)
class ConnectBack:
    """The receiver asked (REVERSE) for a connection to its listener on ``port``."""
    transfer: Transfer
    port: int


@dataclass(frozen=True)
class NoWayIn:
    """The sender could not connect to our listener either (VIA_UDP): the
    receiving worker stops waiting for it and goes over the UDP path."""
    transfer: Transfer


Action = Send | Emit | Stop | ConnectBack | NoWayIn


def farewell(t: Transfer, reason: str) -> wire.Control:
    """The message that ends ``t`` for the peer: CANCEL from the sender, DECLINE from the
    receiver."""
    return (wire.Cancel if t.outgoing else wire.Decline)(t.token, reason)


class Control:
    """The live transfers, by id and by (peer, token, direction). Not thread-safe: its owner
    serializes the calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_id: dict[int, Transfer] = {}
        self._by_token: dict[tuple[str, bytes, bool], Transfer] = {}
        self._ids = itertools.count(1)

    # --- the table ------------------------------------------------------------------------

    def new_id(self) -> int:
        return next(self._ids)

    def add(self, t: Transfer) -> None:
        self.by_id[t.tid] = t
        self._by_token[(t.peer, t.token, t.outgoing)] = t

    def find(self, peer: str, token: bytes, *, outgoing: bool) -> Transfer | None:
        return self._by_token.get((peer, token, outgoing))

    def is_live(self, t: Transfer) -> bool:
        return self.by_id.get(t.tid) is t

    def take(self, t: Transfer) -> bool:
        """Remove ``t``; True for the one caller that gets to report it."""
        if not self.is_live(t):
            return False
        del self.by_id[t.tid]
        self._by_token.pop((t.peer, t.token, t.outgoing), None)
        t.state = State.ENDED
        return True

    def peers(self) -> set[str]:
        return {t.peer for t in self.by_id.values()}

    # --- what the user does -----------------------------------------------------------------

    def offer(self, peer: str, token: bytes, path: Path, size: int, mtime_ns: int,
              port: int) -> tuple[Transfer, Send]:
        name = path.name or "file"
        t = Transfer(self.new_id(), peer, token, name, size, mtime_ns, outgoing=True, path=path)
        self.add(t)
        msg = wire.Offer(token, _cap_utf8(name, wire.MAX_NAME_BYTES), size, mtime_ns, port)
        return t, Send(peer, wire.encode_control(msg))

    def accept(self, tid: int) -> Transfer | None:
        """The user accepts incoming offer ``tid``: None if there is no such open offer."""
        t = self.by_id.get(tid)
        if t is None or t.outgoing or t.state != State.OFFERED:
            return None
        t.state, t.since = State.ACCEPTED, None
        return t

    @staticmethod
    def stopping(t: Transfer, reason: str, discard: bool) -> bool:
        """Note why ``t`` stops; True if a worker is (or may be) on it and cleans up."""
        t.reason = t.reason or reason
        t.discard = t.discard or discard
        return t.state == State.RUNNING or (not t.outgoing and t.state == State.ACCEPTED)

    # --- the clock and the peers --------------------------------------------------------------

    def tick(self, now: float) -> list[Stop]:
        """Expire offers nobody answered and accepts that never got connected."""
        expired = []
        for t in self.by_id.values():
            if t.state in (State.RUNNING, State.RELEASED):
                continue
            if t.since is None:
                t.since = now
            elif now - t.since >= self.settings.offer_ttl:
                why = "offer expired" if t.state == State.OFFERED else "peer never connected"
                expired.append(Stop(t, why, tell_peer=True))
        return expired

    def peer_left(self, peer: str) -> list[Stop]:
        """Unanswered offers and unconnected accepts end (a stream goes on without the
        directory; so does a receiver trying to connect)."""
        return [Stop(t, f"{peer} left", tell_peer=False) for t in self.by_id.values()
                if t.peer == peer and t.state == State.OFFERED
                or t.peer == peer and t.outgoing and t.state == State.ACCEPTED]

    def undelivered(self, peer: str, payload: bytes) -> list[Stop]:
        """A control message ``peer`` never acknowledged: a lost OFFER, ACCEPT or REVERSE ends
        its transfer (the others are best-effort notices)."""
        try:
            msg = wire.decode_control(payload)
        except ProtocolError:
            return []
        if not isinstance(msg, wire.Offer | wire.Accept | wire.Reverse):
            return []
        # our OFFER is about an outgoing transfer; our ACCEPT/REVERSE about an incoming one
        t = self.find(peer, msg.token, outgoing=isinstance(msg, wire.Offer))
        return [] if t is None else [Stop(t, f"{peer} did not answer", tell_peer=False)]

    def receive(self, peer: str, payload: bytes) -> list[Action]:
        """A control payload from ``peer``; a bad one is logged and dropped."""
        try:
            msg = wire.decode_control(payload)
        except ProtocolError as exc:
            log.warning("dropping bad file control message from %s: %s", peer, exc)
            return []
        if isinstance(msg, wire.Offer):
            return self._on_offer(peer, msg)
        if isinstance(msg, wire.Accept):
            return self._on_accept(peer, msg)
        if isinstance(msg, wire.Reverse):
            return self._on_reverse(peer, msg)
        if isinstance(msg, wire.ViaUdp):    # from the sender, about our incoming transfer
            t = self.find(peer, msg.token, outgoing=False)
            return [NoWayIn(t)] if t is not None and t.state == State.ACCEPTED else []
        # DECLINE ends our offer; CANCEL ends theirs
        t = self.find(peer, msg.token, outgoing=isinstance(msg, wire.Decline))
        if t is None:
            return []
        if isinstance(msg, wire.Decline):
            return [Stop(t, _peer_reason(f"{peer} declined", msg.reason), tell_peer=False)]
        return [Stop(t, _peer_reason(f"{peer} cancelled", msg.reason), tell_peer=False,
                     discard=msg.reason == "cancelled")]

    def _on_offer(self, peer: str, msg: wire.Offer) -> list[Action]:
        if self.find(peer, msg.token, outgoing=False) is not None:
            return []
        mine = sum(1 for t in self.by_id.values() if t.peer == peer and not t.outgoing)
        if len(self.by_id) >= self.settings.max_transfers \
                or mine >= self.settings.max_offers_per_peer:
            log.warning("refusing offer from %s: too many transfers", peer)
            return [Send(peer, wire.encode_control(wire.Decline(msg.token, "too many offers")))]
        name = sanitize_name(msg.name)
        t = Transfer(self.new_id(), peer, msg.token, name, msg.size, msg.mtime_ns,
                     outgoing=False, port=msg.port)
        self.add(t)
        log.info("%s offers %r (%d bytes) as #%d", peer, name, msg.size, t.tid)
        return [Emit(FileOffered(t.tid, peer, name, msg.size))]

    def _on_accept(self, peer: str, msg: wire.Accept) -> list[Action]:
        t = self.find(peer, msg.token, outgoing=True)
        if t is None:
            cancel = wire.Cancel(msg.token, "no such offer (expired?)")
            return [Send(peer, wire.encode_control(cancel))]
        if t.state == State.OFFERED:
            t.state, t.since = State.ACCEPTED, None
            log.info("%s accepted #%d", peer, t.tid)
        # else: its connection overtook this ACCEPT and the transfer is already running
        return []

    def _on_reverse(self, peer: str, msg: wire.Reverse) -> list[Action]:
        t = self.find(peer, msg.token, outgoing=True)
        if t is None or t.state != State.ACCEPTED:
            return []
        t.state = State.RUNNING
        return [ConnectBack(t, msg.port)]

    # --- connections ----------------------------------------------------------------------

    def claim_stream(self, peer: str, sid: int) -> Transfer | None:
        """The first frame of a stream on the UDP path: our outgoing transfer to ``peer`` it
        is for (RUNNING from now on), or None. As with a TCP connection, the stream may
        overtake the ACCEPT message."""
        for t in self.by_id.values():
            if t.outgoing and t.peer == peer and udpwire.stream_id(t.token) == sid \
                    and t.state in (State.OFFERED, State.ACCEPTED):
                t.state = State.RUNNING
                return t
        return None

    def awaits_connection(self) -> bool:
        """Is any transfer waiting for an incoming connection? If not, nobody can use one."""
        return any(t.state in (State.OFFERED, State.ACCEPTED) if t.outgoing
                   else t.state == State.ACCEPTED and t.reverse_sock is None
                   for t in self.by_id.values())

    def claim(self, role: bytes, token: bytes) -> Transfer | None:
        """A connection with a complete preamble: the transfer it is for, or None. An outgoing
        one is RUNNING from now on; an incoming one (the sender connecting back) is waiting
        for it in its worker."""
        t = next((x for x in self.by_id.values() if x.token == token
                  and x.outgoing == (role == wire.ROLE_RECEIVER)), None)
        if t is None:
            return None
        if t.outgoing:
            # OFFERED too: the receiver's TCP connection may overtake its ACCEPT message, and
            # only the receiver knows the token (it travelled encrypted in our OFFER).
            if t.state not in (State.OFFERED, State.ACCEPTED):
                return None
            t.state = State.RUNNING
            return t
        return t if t.state == State.ACCEPTED and t.reverse_sock is None else None


def _cap_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore") or "file"


def _peer_reason(what: str, reason: str) -> str:
    return f"{what}: {reason}" if reason else what
