"""The chat part of the engine in one object: channels + backfill + outbox + history.

The engine holds one ``ChatService`` (through ``client/chatlink.py``) and, on its own thread,
feeds it (see ``docs/PROTOCOL.md`` section 10):

* ``start(channels, now)`` once registered (our saved channels, ``#room`` at first start);
* ``peer_online(peer, now)`` for each peer in the roster and each one added later, *before*
  sending it anything else; ``peer_gone(peer, now)`` when one leaves the roster;
* ``on_control(peer, payload, now)`` for each authenticated ``KIND_CONTROL`` payload starting
  with ``b"C"``; ``on_undelivered(peer, payload, now)`` for such a payload never acknowledged;
* ``server_back(now)`` when the directory is reachable again (backfill of every channel);
* ``on_timer(now)`` at ``next_deadline()``;
* our user's actions (``join``, ``part``, ``set_topic``, ``say``, ``message``, ``action``,
  ``set_away``, ``rename``), which raise ``ChannelError``/``ProtocolError``/``ValueError``
  for our user's mistakes.

After each call it takes ``take_sends()`` (send each payload as ``KIND_CONTROL`` to each peer)
and ``take_events()`` (``ChatEvent``s for the faces, in order). History writes happen here,
before the sends are handed out, so a RECEIPT never leaves before the line is stored.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

import nacl.signing
import peewee

from client.chat import events as ev
from client.chat import names, wire
from client.chat.backfill import Backfill
from client.chat.channels import ChannelError, Channels, line_event
from client.chat.history import History, conversation_key
from client.chat.outbox import MAX_WAIT_MS, Outbox
from models.errors import ProtocolError

log = logging.getLogger(__name__)

EXPIRE_EVERY = 3600.0
RESEND_EVERY = 30.0  # waiting private lines to peers online are sent again this often
MAX_UNVERIFIED = 1000  # backfilled lines kept until their author's key is known


class ChatService:
    def __init__(self, me: str, key: nacl.signing.SigningKey,
                 key_of: Callable[[str], bytes | None], history: History) -> None:
        self.channels = Channels(me, key, key_of)
        self.history = history
        self.backfill = Backfill()
        self.outbox = Outbox()
        self._key_of = key_of
        self._sends: list[ev.Send] = []
        self._events: list[ev.ChatEvent] = []
        self._next_expire = 0.0
        self._next_resend = 0.0
        self._need_backfill: set[str] = set()  # our channels to backfill from the next member
        # backfilled lines whose author we have not met yet (its key comes with its session)
        self._unverified: list[wire.SignedLine] = []

    @property
    def me(self) -> str:
        return self.channels.me

    # --- outputs ---------------------------------------------------------------------------
    def take_sends(self) -> list[ev.Send]:
        out, self._sends = self._sends, []
        return out

    def take_events(self) -> list[ev.ChatEvent]:
        out, self._events = self._events, []
        return out

    # --- engine inputs ---------------------------------------------------------------------
    def start(self, channels: list[str], now: float) -> None:
        """Rejoin our saved channels (``#room`` if none) and show what still waits."""
        for channel in channels or [names.ROOM]:
            try:
                self.join(channel, now, restored=True)
            except (ProtocolError, ChannelError) as exc:  # a damaged saved name: skip it
                log.warning("cannot rejoin %r: %s", channel, exc)
        if self.channels.joined():
            self.channels.set_current(self.channels.joined()[0])
        self._events += self.outbox.restored(self.history.waiting())
        self._next_resend = now + RESEND_EVERY  # peer_online sends them first
        self._expire(now)

    def peer_online(self, peer: str, now: float) -> None:
        self.channels.peer_online(peer, now)
        for line in self.history.waiting(peer):
            self.channels.resend(line)
        self._collect(now)

    def peer_gone(self, peer: str, now: float) -> None:
        self.channels.peer_gone(peer, now)
        self._collect(now)

    def on_control(self, peer: str, payload: bytes, now: float) -> None:
        if self._unverified:
            self._merge_known(now)  # a payload from peer: its session, so its key, is up
        self.channels.on_control(peer, payload, now)
        self._collect(now)

    def on_undelivered(self, peer: str, payload: bytes, now: float) -> None:
        self._events += self.outbox.undelivered(payload)

    def server_back(self, now: float) -> None:
        for channel in self.channels.joined():
            self._want_backfill(channel, now)
        self._collect(now)

    def on_timer(self, now: float) -> None:
        self.backfill.on_timer(now)
        if now >= self._next_expire:
            self._expire(now)
        if now >= self._next_resend:
            # a line the Messenger gave up on (peer slow or unreachable for a while, but still
            # in the roster) waits; try again rather than only when the peer comes back
            self._next_resend = now + RESEND_EVERY
            for line in self.history.waiting():
                if self.channels.is_online(line.target):
                    self.channels.resend(line)
            self._collect(now)

    def next_deadline(self) -> float | None:
        due = min(self._next_expire, self._next_resend)
        backfill = self.backfill.next_deadline()
        return due if backfill is None else min(due, backfill)

    # --- our user's actions ----------------------------------------------------------------
    def join(self, channel: str, now: float, *, restored: bool = False) -> str:
        was = self.channels.is_joined(channel)
        display = self.channels.join(channel, now, restored=restored)
        self._collect(now)
        if not was:
            self._show_recent(display)
            self._want_backfill(display, now)
        self._collect(now)
        return display

    def part(self, channel: str | None, reason: str, now: float) -> str:
        display = self.channels.part(channel, reason, now)
        self._need_backfill.discard(names.channel_key(display))
        self._collect(now)
        return display

    def set_topic(self, channel: str | None, text: str, now: float) -> None:
        self.channels.set_topic(channel, text, now)
        self._collect(now)

    def say(self, channel: str | None, text: str, now: float,
            kind: wire.Kind = wire.Kind.MESSAGE) -> wire.SignedLine:
        line = self.channels.say(channel, text, now, kind)
        self.history.add(line)
        self._collect(now)
        return line

    def message(self, target: str, text: str, now: float,
                kind: wire.Kind = wire.Kind.MESSAGE) -> wire.SignedLine:
        """``/msg``: to a channel we are in, or a private line (queued until its RECEIPT)."""
        if target.startswith(names.PREFIX):
            return self.say(target, text, now, kind)
        line = self.channels.private(target, text, now, kind)
        self.history.queue(line)
        self._events += self.outbox.sent(line, online=self.channels.is_online(target))
        self._collect(now)
        return line

    def action(self, target: str | None, text: str, now: float) -> wire.SignedLine:
        if target is None:
            return self.say(None, text, now, wire.Kind.ACTION)
        return self.message(target, text, now, wire.Kind.ACTION)

    def set_away(self, text: str | None, now: float) -> None:
        self.channels.set_away(text, now)
        self._collect(now)

    def rename(self, new: str, now: float) -> None:
        self.channels.rename(new, now)
        self.history.me = new
        self._collect(now)

    def recent(self, target: str | None, count: int) -> list[wire.SignedLine]:
        """``/history``: the last ``count`` lines (None: the current channel)."""
        where = target or self.channels.current
        return self.history.last(conversation_key(where), count) if where else []

    # --- routing -----------------------------------------------------------------------------
    def _collect(self, now: float) -> None:
        self._sends += self.channels.take_sends()
        for event in self.channels.take_events():
            try:
                self._route(event, now)
            except (peewee.PeeweeException, sqlite3.Error, OSError) as exc:
                # a full disk or a locked database loses this line, not the chat
                log.error("history failed for %s: %s", type(event).__name__, exc)
        self._sends += self.channels.take_sends()

    def _route(self, event: ev.ChatEvent | ev.EngineEvent, now: float) -> None:
        if isinstance(event, ev.ChannelMessage | ev.PrivateLine | ev.Action):
            if self.history.add(event.line):  # False: stored before (a retransmission)
                self._events.append(event)
        elif isinstance(event, ev.ReceiptReceived):
            self._events += self.outbox.delivered(self.history.delivered(event.peer,
                                                                         event.msg_ids))
        elif isinstance(event, ev.BackfillAsked):
            req = event.request
            self._sends += self.backfill.answer(
                event.peer, req, is_member=self.channels.is_member(req.channel, event.peer),
                now=now, lookup=self.history.since)
        elif isinstance(event, ev.BackfillArrived):
            lines = self.backfill.accept(event.peer, event.channel, event.last, event.lines, now)
            self._unverified += lines
            self._merge_known(now)
        else:
            if isinstance(event, ev.ChannelJoined) and event.mine:
                if names.channel_key(event.channel) in self._need_backfill:
                    self._want_backfill(event.channel, now)  # the first member we learn of
                elif names.peer_key(event.nick) != names.peer_key(self.me):
                    self._sends += self.backfill.also(event.channel, event.nick, now)
            self._events.append(event)

    def _merge_known(self, now: float) -> None:
        """Merge the backfilled lines whose author's key we know; keep the others (bounded)
        until we meet their author."""
        ready = [x for x in self._unverified if self._key_of(x.author) is not None]
        self._unverified = [x for x in self._unverified if self._key_of(x.author) is None]
        if len(self._unverified) > MAX_UNVERIFIED:
            log.warning("dropping %d backfilled line(s) by authors we never met",
                        len(self._unverified) - MAX_UNVERIFIED)
            self._unverified = self._unverified[-MAX_UNVERIFIED:]
        if not ready:
            return
        result = self.history.merge(ready, self._key_of)
        for line in sorted(result.added, key=lambda x: (x.ts_ms, x.msg_id)):
            self._events.append(line_event(line, self.me, history=True))

    def _want_backfill(self, channel: str, now: float) -> None:
        """Ask online members now, or the first member we learn of (at start, nobody yet)."""
        members = self.channels.members(channel)
        key = names.channel_key(channel)
        if not members:
            self._need_backfill.add(key)
            return
        self._need_backfill.discard(key)
        newest = self.history.newest_ts(conversation_key(channel))
        self._sends += self.backfill.want(channel, members, newest, now)

    def _show_recent(self, channel: str, count: int = 20) -> None:
        for line in self.history.last(conversation_key(channel), count):
            self._events.append(line_event(line, self.me, history=True))

    def _expire(self, now: float) -> None:
        self._next_expire = now + EXPIRE_EVERY
        self._events += self.outbox.failed(self.history.expire(int(now * 1000), MAX_WAIT_MS))
