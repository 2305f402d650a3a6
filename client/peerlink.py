"""Our link to the peers, on the engine thread: the Messenger and the transport pumped together,
what their events mean to the UI and to the file layer, and which peers' keys are verified.

Sans-IO like its parts: datagrams leave through ``send_datagrams`` (the engine's UDP edge),
events through ``emit``, file-transfer signalling through ``with_files``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from client import events as ev
from client.contracts import FileService, Transport
from client.peer.messenger import (
    KIND_CONTROL,
    KIND_PRIVATE,
    KIND_ROOM,
    Acked,
    Delivered,
    Messenger,
    Undelivered,
)
from client.peer.secure import SessionStarted
from client.serverlink.roster import Changes, PeerRoster
from models.frames import FILE_STREAM

log = logging.getLogger(__name__)

MAX_IDENTITY_WAITERS = 64  # fetch_identity callers waiting on a handshake (a UI, not a flood)
MAX_PUMP_ROUNDS = 64
PATH_FRAME_MIN = 0x10  # Messenger frames are 0x01..0x03; 0x10, 0x11 are path probes

WhoisCallback = Callable[[ev.Whois | None], None]


class ChatSink(Protocol):
    """Where chat control payloads (``b"C"``) go: ``client.chatlink.ChatLink``."""

    def on_control(self, peer: str, payload: bytes, now: float) -> None: ...

    def on_undelivered(self, peer: str, payload: bytes, now: float) -> None: ...


def answer(on_result: Callable[[Any], None], info: Any) -> None:
    """Hand a result to a caller's callback; a UI's bug must not stop the engine."""
    try:
        on_result(info)
    except Exception:
        log.exception("%r callback failed", on_result)


class PeerLink:
    def __init__(self, messenger: Messenger, transport: Transport, roster: PeerRoster, *,
                 send_datagrams: Callable[[list[tuple[str, bytes]]], None],
                 emit: Callable[[ev.Event], None],
                 with_files: Callable[[Callable[[FileService], object]], None],
                 on_path_frame: Callable[[str, bytes, float], None] | None = None,
                 chat: ChatSink | None = None) -> None:
        self.messenger = messenger
        # frames of the path manager (types >= PATH_FRAME_MIN, client.reachlink): not messages
        self._on_path_frame = on_path_frame
        self.transport = transport
        self.roster = roster
        self._send_datagrams = send_datagrams
        self._emit = emit
        self._with_files = with_files
        self._chat = chat
        # file data on the UDP path (client.bulk.BulkPath.on_frame), once files are attached
        self.bulk: Callable[[str, bytes, float], None] | None = None
        self._closed = False
        # fetch_identity callers waiting for a handshake: (deadline, peer, callback)
        self._waiters: list[tuple[float, str, WhoisCallback]] = []
        # nicknames online whose key the user verified (now or in an earlier run); written on
        # the engine thread only, read by UIs without a round trip
        self.verified: set[str] = set()

    # -- timing ----------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.messenger.next_deadline(), self.transport.next_deadline())
                     if d is not None]
        if self._waiters:
            deadlines.append(min(w[0] for w in self._waiters))
        return min(deadlines, default=None)

    def idle(self) -> bool:
        """Nothing unacknowledged, no handshake under way."""
        return self.messenger.next_deadline() is None and self.transport.next_deadline() is None

    def on_timer(self, now: float) -> None:
        self.messenger.on_timer(now)
        self.transport.on_timer(now)

    def on_late_timer(self, now: float) -> None:
        """After the server channel and the file layer had their turn: overdue identity waits."""
        if self._waiters:
            self._answer_waiters(lambda deadline, peer: now >= deadline)

    def close(self) -> None:
        """The engine stops: every waiting caller hears None; the transport finishes its
        writes (pins saved lazily after a handshake). Once."""
        waiters, self._waiters = self._waiters, []
        for _deadline, _peer, on_result in waiters:
            answer(on_result, None)
        if self._closed:
            return
        self._closed = True
        try:
            self.transport.close()
        except Exception:
            log.exception("closing the transport failed")

    # -- sending and pumping ---------------------------------------------------------------
    def send(self, peers: list[str], kind: int, payload: bytes, now: float) -> int:
        return self.messenger.send(peers, kind, payload, now)

    def pump(self, now: float, on_acked: Callable[[str, int], None] | None) -> None:
        """Move frames and datagrams between the layers until nothing is left to move;
        ``on_acked(peer, msg_id)`` for each peer's acknowledgement of a whole message."""
        messenger, transport = self.messenger, self.transport
        receive, wrap = messenger.receive, transport.wrap
        for _ in range(MAX_PUMP_ROUNDS):
            moved = False
            # transport events first: a restarted session resets the Messenger's state for
            # that peer before the frames of the new session reach it
            for event in transport.take_events():
                self._on_transport_event(event, now)
                moved = True
            frames = transport.take_frames()
            if frames:
                moved = True
                bulk = self.bulk
                for peer, frame in frames:
                    if frame[0] == FILE_STREAM and bulk is not None:
                        bulk(peer, frame, now)
                    elif frame[0] < PATH_FRAME_MIN or self._on_path_frame is None:
                        receive(peer, frame, now)
                    else:
                        self._on_path_frame(peer, frame, now)
            outgoing = messenger.take_outgoing()
            if outgoing:
                moved = True
                for peer, frame in outgoing:
                    wrap(peer, frame, now)
            out = transport.take_outgoing()
            if out:
                self._send_datagrams(out)
            events = messenger.take_events()
            if events:
                moved = True
                for event in events:
                    if type(event) is Acked:  # one per recipient of a room message: cheap
                        if on_acked is not None:
                            on_acked(event.peer, event.msg_id)
                    else:
                        self._on_messenger_event(event, now)
            if not moved:
                return

    def apply(self, changes: Changes, now: float) -> None:
        """Roster changes: who left is forgotten by every layer; the UI hears of both."""
        for nick in changes.left:
            self.messenger.forget_peer(nick, now)
            self.transport.forget_peer(nick)
            self.verified.discard(nick)
            self._with_files(lambda files, nick=nick: files.on_peer_left(nick))
            self._emit(ev.Left(nick))
        for nick in changes.joined:
            self.update_verified(nick, now)  # before the UI hears of the join
            self._emit(ev.Joined(nick))

    def _on_messenger_event(self, event: object, now: float) -> None:
        if isinstance(event, Delivered):
            if event.kind == KIND_CONTROL:
                if event.payload[:1] == b"F":
                    self._with_files(lambda files: files.on_control(event.peer, event.payload))
                elif event.payload[:1] == b"C" and self._chat is not None:
                    self._chat.on_control(event.peer, event.payload, now)
                return
            if event.kind not in (KIND_ROOM, KIND_PRIVATE):
                return
            text = event.payload.decode("utf-8", "replace")
            cls = ev.PrivateMessage if event.kind == KIND_PRIVATE else ev.RoomMessage
            self._emit(cls(event.peer, text, event.msg_id,
                           self.transport.warning_for(event.peer)))
        elif isinstance(event, Undelivered):
            if event.kind == KIND_CONTROL:
                if event.payload[:1] == b"C" and self._chat is not None:
                    self._chat.on_undelivered(event.peer, event.payload, now)
                else:
                    self._with_files(lambda files: files.on_undelivered(event.peer,
                                                                        event.payload))
                return
            self._emit(ev.NotDelivered(event.peer, event.payload.decode("utf-8", "replace"),
                                       event.msg_id, private=event.kind == KIND_PRIVATE))

    def _on_transport_event(self, event: object, now: float) -> None:
        if isinstance(event, SessionStarted):
            peer = event.peer
            if event.restarted:
                self.messenger.reset_peer(peer)
            self.update_verified(peer)  # the live key may differ from the verified pin
            if self._waiters:
                self._answer_waiters(lambda deadline, p: p == peer)
        elif isinstance(event, ev.KeyChanged | ev.PeerUnreachable):
            self.update_verified(event.nickname)
            self._emit(event)
            if self._waiters:
                self._answer_waiters(lambda deadline, p: p == event.nickname)

    # -- identities ------------------------------------------------------------------------
    def whois(self, nickname: str) -> ev.Whois | None:
        peer = self.roster.resolve(nickname) or nickname
        t = self.transport
        fingerprint = t.fingerprint(peer)
        address = self.roster.address_of(peer)
        if fingerprint is None and address is None:
            return None
        return ev.Whois(peer, fingerprint, verified=bool(t.is_verified(peer)),
                        key_changed=bool(t.key_changed(peer)), address=address)

    def ask_identity(self, nickname: str, on_result: WhoisCallback, timeout: float,
                     now: float) -> None:
        """``whois`` once the peer's key is known: at once if a session is up (or cannot be
        had), else after the handshake this starts, or at ``now + timeout``."""
        peer = self.roster.resolve(nickname)
        if peer is None or self.transport.ensure_session(peer, now) or \
                len(self._waiters) >= MAX_IDENTITY_WAITERS:
            answer(on_result, self.whois(nickname))
        else:
            self._waiters.append((now + max(0.0, timeout), peer, on_result))

    def mark_verified(self, nickname: str) -> bool:
        peer = self.roster.resolve(nickname) or nickname
        ok = bool(self.transport.mark_verified(peer))
        self.update_verified(peer)
        return ok

    def update_verified(self, peer: str, now: float | None = None) -> None:
        """Refresh ``peer in verified``. With ``now`` (peer just seen online), a verified peer
        without a session gets a handshake at once: its pin is only what the key *was*, and an
        impostor under that nickname must turn into a KeyChanged warning, not keep the mark."""
        t = self.transport
        if t.is_verified(peer) and self.roster.address_of(peer) is not None:
            self.verified.add(peer)
            if now is not None:
                t.ensure_session(peer, now)
        else:
            self.verified.discard(peer)

    def _answer_waiters(self, due: Callable[[float, str], bool]) -> None:
        keep = []
        for deadline, peer, on_result in self._waiters:
            if due(deadline, peer):
                answer(on_result, self.whois(peer))
            else:
                keep.append((deadline, peer, on_result))
        self._waiters = keep
