"""Reliable, ordered, exactly-once messages between peers, sans-IO (frames in ``models.frames``).

The engine feeds the ``Messenger`` frames that arrived (``receive``), the time (``on_timer`` at
``next_deadline()``), and the application's messages (``send``); it takes back frames to send
(``take_outgoing``) and events (``take_events``). Nothing here touches a socket or a clock.

How it works, per direction between two peers (a *stream*):
- a message is cut into fragments of at most ``MAX_CHUNK`` bytes, each one DATA frame with the
  next ``seq``; a room message to N peers is N independent streams sharing the fragment bytes;
- at most ``SEND_WINDOW`` frames beyond the oldest unacknowledged one are in flight, the rest wait;
- the recipient acknowledges every burst of DATA with one ACK (cumulative + selective ranges),
  delivers fragments in seq order, buffers out-of-order ones in a bounded window, drops duplicates;
- unacknowledged frames are retransmitted after an adaptive timeout (RFC 6298 SRTT/RTTVAR, Karn's
  rule, floor ``RTO_MIN``) backed off by ``BACKOFF`` per retransmission up to a cap relative to
  the path (``CAP_FACTOR`` x the clean RTO, within ``CAP_FLOOR``..``RTO_MAX``); new frames start
  at the clean RTO, and ACKs that only ever acknowledge retransmissions raise it (a slower path);
- a message not acknowledged by ``deadline`` seconds after ``send`` is given up for that peer
  (``Undelivered``); the recipient learns from the ``lag``/SKIP that it should stop waiting for it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable

from client.errors import MessageTooLarge
from client.peer.outcomes import MAX_MESSAGE, Acked, Delivered, Event, Undelivered
from client.peer.receiving import Receiver
from client.peer.sending import Sender
from models import frames
from models.errors import ProtocolError
from models.frames import ACK, KIND_CONTROL, KIND_PRIVATE, KIND_ROOM, KINDS

log = logging.getLogger(__name__)

# bound once: the common ACK is parsed here on every frame
_ACK_HEAD_UNPACK = frames.ACK_HEAD.unpack
_ACK_HEAD_SIZE = frames.ACK_HEAD.size

__all__ = [
    "KIND_CONTROL", "KIND_PRIVATE", "KIND_ROOM", "MAX_MESSAGE", "Acked", "Delivered", "Event",
    "MessageTooLarge", "Messenger", "Undelivered",
]


class Messenger:
    """Sans-IO reliable messaging with every peer; see the module docstring.

    A facade over the sending half (``client.peer.sending``) and the receiving half
    (``client.peer.receiving``), which share its event list and counters.
    """

    def __init__(self, *, now: float, deadline: float = 10.0,
                 rng: random.Random | None = None) -> None:
        self._now = now
        self._events: list[Event] = []
        self.counters: Counter[str] = Counter()  # dropped/duplicate/retransmitted, for logs/tests
        self._sender = Sender(deadline=deadline, rng=rng if rng is not None else random.Random(),
                              events=self._events, counters=self.counters)
        self._receiver = Receiver(events=self._events, counters=self.counters)
        self._on_ack = self._sender.on_ack  # bound once: called for most frames

    def send(self, peers: Iterable[str], kind: int, payload: bytes, now: float) -> int:
        """Queue ``payload`` for every peer; returns the msg_id used in the events."""
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind}")
        payload = bytes(payload)
        if len(payload) > MAX_MESSAGE:
            raise MessageTooLarge(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
        self._now = now
        return self._sender.send(peers, kind, payload, now)

    def receive(self, peer: str, frame: bytes, now: float) -> None:
        """Handle one frame from an authenticated peer. Never raises."""
        self._now = now
        if len(frame) == _ACK_HEAD_SIZE and frame[0] == ACK:
            # the common ACK (no ranges), parsed here without an Ack object; the same checks
            # as frames.decode: a fixed-size header whose range count must be 0
            _, epoch, cum, n = _ACK_HEAD_UNPACK(frame)
            if n == 0:
                try:
                    self._on_ack(peer, epoch, cum, (), now)
                except Exception:  # our own bug: see below
                    self.counters["internal_error"] += 1
                    log.exception("internal error handling a frame from %s", peer)
                return
        try:
            decoded = frames.decode(frame)
        except ProtocolError as exc:
            self.counters["malformed"] += 1
            log.debug("dropped malformed frame from %s: %s", peer, exc)
            return
        try:
            if type(decoded) is frames.Ack:
                self._on_ack(peer, decoded.epoch, decoded.cum, decoded.ranges, now)
            elif type(decoded) is frames.Data:
                self._receiver.on_data(peer, decoded)
            else:
                self._receiver.on_skip(peer, decoded)
        except Exception:  # our own bug: loud in the log, but one peer's frame must not kill us
            self.counters["internal_error"] += 1
            log.exception("internal error handling a frame from %s", peer)

    def on_timer(self, now: float) -> None:
        """Give up expired messages, then retransmit whatever is due."""
        self._now = now
        self._sender.on_timer(now)

    def next_deadline(self) -> float | None:
        """The earliest time ``on_timer`` has work to do, or None."""
        return self._sender.next_deadline()

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        """Frames to send, ACKs first (one per peer that sent us DATA since the last call)."""
        sender = self._sender
        out = sender.out
        sender.out = []
        acks = self._receiver.take_acks()
        return acks + out if acks else out

    def take_events(self) -> list[Event]:
        events = self._events[:]
        self._events.clear()
        return events

    def forget_peer(self, peer: str, now: float) -> None:
        """The peer left: everything pending for it becomes ``Undelivered``; its state goes."""
        self._now = now
        self._sender.forget(peer)
        self._receiver.drop(peer)

    def reset_peer(self, peer: str) -> None:
        """The peer's session restarted: fresh receive state, and a fresh send stream (new epoch)
        into which every message it has not acknowledged yet is queued again, whole."""
        self._receiver.drop(peer)
        self._sender.restart(peer, self._now)
