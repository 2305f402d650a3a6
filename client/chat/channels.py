"""The channel state machine, sans-IO: who is in which channel, topics, away, renames, lines.

The engine feeds it: ``peer_online`` / ``peer_gone`` (the roster), ``on_control`` (chat control
payloads that arrived from a peer's authenticated session), and our user's actions (``join``,
``part``, ``set_topic``, ``say``, ``private``, ``set_away``, ``rename``). It takes back
``take_sends()`` (payloads and their recipients) and ``take_events()`` (face and engine events,
in order). Time is an argument; nothing here touches a socket or a clock.

Trust: membership, away and renames are believed only from the peer's *own* session; a live
chat line or topic must be signed by its author, who must be the sending peer; topics relayed in
a STATE must be signed by a key we know for their setter. ``key_of(nick)`` is the engine's
answer "the identity key pinned for this nickname" (None: unknown).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import nacl.signing

from client.chat import events as ev
from client.chat import names, wire
from client.chat.names import peer_key as _nkey
from client.errors import ClientError
from models import nickname
from models.errors import ProtocolError

log = logging.getLogger(__name__)

MAX_CHANNELS_PER_PEER = wire.MAX_STATE_CHANNELS
MAX_MEMBERS = 1024  # other members remembered per channel
MAX_CHANNELS = 1024  # channels known in all
MAX_CLOCK = 1 << 53  # topic clocks above this are refused (a member could otherwise pin one)
RATE = 20.0  # control messages per second per peer, sustained
BURST = 60.0
SEEN_IDS = 4096  # recent line ids remembered to show a retransmitted line once


class ChannelError(ClientError):
    """Our own user's mistake (not a member, too many channels...); the text is for people."""


@dataclass(frozen=True)
class ChannelInfo:
    name: str
    members: int  # including us when joined
    topic: str
    joined: bool


class _Bucket:
    __slots__ = ("tokens", "at", "warned")

    def __init__(self, now: float) -> None:
        self.tokens, self.at, self.warned = BURST, now, False

    def take(self, now: float) -> bool:
        self.tokens = min(BURST, self.tokens + max(0.0, now - self.at) * RATE)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.warned = False
        return True


class Channels:
    """Channel membership and everything said in channels, as seen from ``me``."""

    def __init__(self, me: str, key: nacl.signing.SigningKey,
                 key_of: Callable[[str], bytes | None]) -> None:
        self.me = me
        self._key = key
        self._key_of = key_of
        self.clock = 0
        self._joined: OrderedDict[str, str] = OrderedDict()  # channel key -> display, ours
        self.current: str | None = None  # display name of the current channel
        self._display: dict[str, str] = {}  # channel key -> display, every known channel
        self._members: dict[str, dict[str, str]] = {}  # channel key -> {peer key: nick}
        self._topics: dict[str, wire.SignedLine] = {}
        self._online: dict[str, str] = {}  # peer key -> nick
        self._away: dict[str, str] = {}  # peer key -> text
        self.away_text: str | None = None  # ours
        self._replied: set[str] = set()  # peers auto-replied to during this away
        self._buckets: dict[str, _Bucket] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._sends: list[ev.Send] = []
        self._events: list[ev.ChatEvent | ev.EngineEvent] = []

    # --- outputs ---------------------------------------------------------------------------
    def take_sends(self) -> list[ev.Send]:
        out, self._sends = self._sends, []
        return out

    def take_events(self) -> list[ev.ChatEvent | ev.EngineEvent]:
        out, self._events = self._events, []
        return out

    # --- queries ---------------------------------------------------------------------------
    def joined(self) -> list[str]:
        """Our channels (display names) in join order: saved by the engine, rejoined at start."""
        return list(self._joined.values())

    def is_joined(self, channel: str) -> bool:
        return _ckey(channel) in self._joined

    def members(self, channel: str) -> list[str]:
        """The other members online: the recipients of a message to ``channel``."""
        return list(self._members.get(_ckey(channel), {}).values())

    def names(self, channel: str) -> list[str]:
        key = _ckey(channel)
        out = self.members(channel) + ([self.me] if key in self._joined else [])
        return sorted(out, key=str.casefold)

    def topic(self, channel: str) -> wire.SignedLine | None:
        return self._topics.get(_ckey(channel))

    def channels(self) -> list[ChannelInfo]:
        out = []
        for key, display in self._display.items():
            count = len(self._members.get(key, {})) + (key in self._joined)
            if count:
                topic = self._topics.get(key)
                out.append(ChannelInfo(display, count, topic.text if topic else "",
                                       key in self._joined))
        return sorted(out, key=lambda c: c.name.casefold())

    def common_channels(self, nick: str) -> list[str]:
        peer = _nkey(nick)
        return [self._display[k] for k in self._joined if peer in self._members.get(k, {})]

    def is_online(self, nick: str) -> bool:
        return _nkey(nick) in self._online

    def is_member(self, channel: str, nick: str) -> bool:
        """``nick`` is in ``channel`` and so are we (who may ask us for its backfill)."""
        key = _ckey(channel)
        return key in self._joined and _nkey(nick) in self._members.get(key, {})

    def away_of(self, nick: str) -> str | None:
        return self.away_text if _nkey(nick) == _nkey(self.me) else self._away.get(_nkey(nick))

    # --- our user's actions ----------------------------------------------------------------
    def join(self, channel: str, now: float, *, restored: bool = False) -> str:
        """Join (creating it if nobody has it) and make it current. ``ProtocolError`` for a bad
        name, ``ChannelError`` for too many channels. ``restored``: rejoined at start (its
        event is not fresh, so the terminal prints nothing)."""
        display, key = names.normalize(channel)
        display = self._display.get(key, display)
        if key not in self._joined:
            if len(self._joined) >= MAX_CHANNELS_PER_PEER:
                raise ChannelError(f"you are in {MAX_CHANNELS_PER_PEER} channels already; "
                                   f"/part one first")
            self._joined[key] = display
            self._display[key] = display
            self._send(self._online_peers(), wire.Join(display))
            self._events.append(ev.ChannelJoined(display, self.me, True, not restored))
            topic = self._topics.get(key)
            if topic is not None:
                self._events.append(ev.TopicChanged(display, topic.text, topic.author))
        self.current = display
        return display

    def part(self, channel: str | None, reason: str, now: float) -> str:
        display = self._our_channel(channel)
        key = _ckey(display)
        del self._joined[key]
        self._send(self._online_peers(), wire.Part(display, _cut(reason, wire.MAX_SHORT)))
        self._events.append(ev.ChannelParted(display, self.me, True, reason))
        if self.current is not None and _ckey(self.current) == key:
            self.current = next(iter(self._joined.values()), None)
        self._forget_if_empty(key)
        return display

    def set_current(self, channel: str) -> str:
        self.current = self._our_channel(channel)
        return self.current

    def set_topic(self, channel: str | None, text: str, now: float) -> wire.SignedLine:
        display = self._our_channel(channel)
        current = self._topics.get(_ckey(display))
        self.clock = max(self.clock, current.clock if current else 0) + 1
        line = self._sign(display, wire.Kind.TOPIC, _cut(text.replace("\n", " "),
                                                         wire.MAX_TOPIC), now)
        self._apply_topic(line)
        self._send(self._online_peers(), wire.Topic(line))
        return line

    def say(self, channel: str | None, text: str, now: float,
            kind: wire.Kind = wire.Kind.MESSAGE) -> wire.SignedLine:
        """A message (or action) to a channel we are in, sent to its members only. Returns the
        signed line for history; ``ValueError`` if the text is too long or empty."""
        display = self._our_channel(channel)
        line = self._sign(display, kind, text, now)
        self._remember(line.msg_id)
        self._send(self.members(display), wire.Line(line))
        return line

    def private(self, nick: str, text: str, now: float,
                kind: wire.Kind = wire.Kind.MESSAGE) -> wire.SignedLine:
        """A signed private line for ``nick``; sent now if ``nick`` is online. The engine keeps
        it in the outbox until a RECEIPT names its id (``resend`` after a restart)."""
        line = self._sign(nick, kind, text, now)
        if _nkey(nick) in self._online:
            self.resend(line)
        return line

    def resend(self, line: wire.SignedLine) -> None:
        """(Re)send one of our private lines to its recipient (outbox, after a restart)."""
        self._send([line.target], wire.Line(line))

    def set_away(self, text: str | None, now: float) -> None:
        """``text``: away with that text; None or empty: back."""
        text = _cut(text, wire.MAX_SHORT) if text else None
        self.away_text = text
        self._replied.clear()
        self._send(self._online_peers(), wire.Away(text is not None, text or ""))
        self._events.append(ev.AwayChanged(self.me, text))

    def rename(self, new: str, now: float) -> None:
        """Tell every peer, from our current session, that we are becoming ``new``. Call before
        moving the directory registration (peers then see a rename, not a leave and a join)."""
        nickname.normalize(new)
        self._send(self._online_peers(), wire.Rename(new))
        old, self.me = self.me, new
        self._events.append(ev.Renamed(old, new))

    # --- peers -----------------------------------------------------------------------------
    def peer_online(self, peer: str, now: float) -> None:
        """``peer`` is reachable (it joined the roster, or we met it): send it our state."""
        pkey = _nkey(peer)
        if pkey not in self._online and not any(pkey in m for m in self._members.values()):
            # everyone is in #room at start: until its STATE says otherwise, so is this peer,
            # and a message to #room right after it appeared reaches it
            self._add_member(names.ROOM, peer, pkey, fresh=False)
        self._online[pkey] = peer
        topics = tuple(t for k, t in self._topics.items() if k in self._joined)
        self._send([peer], wire.State(self.away_text is not None, self.away_text or "",
                                      tuple(self._joined.values()), topics))

    def peer_gone(self, peer: str, now: float) -> None:
        """``peer`` left the directory: forget its memberships and away state."""
        pkey = _nkey(peer)
        self._online.pop(pkey, None)
        self._away.pop(pkey, None)
        self._buckets.pop(pkey, None)
        self._replied.discard(pkey)
        for key in list(self._members):
            nick = self._members[key].pop(pkey, None)
            if nick is not None:
                self._events.append(ev.ChannelParted(self._display[key], nick,
                                                     key in self._joined, quit=True))
                self._forget_if_empty(key)

    def on_control(self, peer: str, payload: bytes, now: float) -> None:
        """A chat control payload (starts with ``b"C"``) from ``peer``'s authenticated session.
        Never raises: bad input is logged and dropped."""
        pkey = _nkey(peer)
        bucket = self._buckets.setdefault(pkey, _Bucket(now))
        if not bucket.take(now):
            if not bucket.warned:
                bucket.warned = True
                log.warning("%s sends chat control messages too fast; dropping", peer)
            return
        try:
            msg = wire.decode(payload)
            self._dispatch(peer, pkey, msg, now)
        except ProtocolError as exc:
            log.warning("dropping bad chat message from %s: %s", peer, exc)

    # --- handlers --------------------------------------------------------------------------
    def _dispatch(self, peer: str, pkey: str, msg: wire.Message, now: float) -> None:
        self._online.setdefault(pkey, peer)
        if isinstance(msg, wire.Join):
            self._add_member(msg.channel, peer, pkey, fresh=True)
        elif isinstance(msg, wire.Part):
            self._remove_member(msg.channel, pkey, msg.reason)
        elif isinstance(msg, wire.State):
            self._on_state(peer, pkey, msg)
        elif isinstance(msg, wire.Topic):
            self._on_topic(peer, msg.line, live=True)
        elif isinstance(msg, wire.Away):
            self._on_away(peer, pkey, msg.text if msg.away else None, fresh=True)
        elif isinstance(msg, wire.Rename):
            self._on_rename(peer, pkey, msg.new_nick)
        elif isinstance(msg, wire.Line):
            self._on_line(peer, pkey, msg.line)
        elif isinstance(msg, wire.Receipt):
            self._events.append(ev.ReceiptReceived(peer, msg.msg_ids))
        elif isinstance(msg, wire.BackfillRequest):
            self._events.append(ev.BackfillAsked(peer, msg))
        elif isinstance(msg, wire.Backfill):
            self._events.append(ev.BackfillArrived(peer, msg.channel, msg.last, msg.lines))
        elif isinstance(msg, wire.AutoReply):
            self._events.append(ev.AwayReply(peer, msg.text))

    def _add_member(self, channel: str, peer: str, pkey: str, *, fresh: bool) -> None:
        display, key = names.normalize(channel)
        members = self._members.get(key)
        if members is not None and pkey in members:
            return
        if sum(pkey in m for m in self._members.values()) >= MAX_CHANNELS_PER_PEER:
            raise ProtocolError("LIMIT", f"{peer} is in too many channels")
        if members is None:
            if len(self._display) >= MAX_CHANNELS and key not in self._display:
                raise ProtocolError("LIMIT", "too many channels known")
            members = self._members[key] = {}
        if len(members) >= MAX_MEMBERS:
            raise ProtocolError("LIMIT", f"{display} has too many members")
        self._display.setdefault(key, display)
        members[pkey] = peer
        self._events.append(ev.ChannelJoined(self._display[key], peer, key in self._joined,
                                             fresh))

    def _remove_member(self, channel: str, pkey: str, reason: str, *, quiet: bool = False
                       ) -> None:
        key = _ckey(channel)
        nick = self._members.get(key, {}).pop(pkey, None)
        if nick is None:
            return
        if not quiet:
            self._events.append(ev.ChannelParted(self._display[key], nick, key in self._joined,
                                                 reason))
        self._forget_if_empty(key)

    def _on_state(self, peer: str, pkey: str, msg: wire.State) -> None:
        keys = {_ckey(c) for c in msg.channels}
        for key, members in list(self._members.items()):
            if pkey in members and key not in keys:
                self._remove_member(self._display[key], pkey, "", quiet=True)
        for channel in msg.channels:
            self._add_member(channel, peer, pkey, fresh=False)
        for topic in msg.topics:
            if _ckey(topic.target) in keys:
                self._on_topic(peer, topic, live=False)
        self._on_away(peer, pkey, msg.away_text if msg.away else None, fresh=False)

    def _on_topic(self, peer: str, line: wire.SignedLine, *, live: bool) -> None:
        if live and _nkey(line.author) != _nkey(peer):
            raise ProtocolError("NOT_AUTHOR", f"{peer} sent a topic set by {line.author}")
        if line.clock >= MAX_CLOCK:
            raise ProtocolError("BAD_CLOCK", "topic clock out of range")
        verdict = wire.verify_line(line, self._key_of(line.author))
        if verdict is not wire.Verdict.OK:
            raise ProtocolError("BAD_SIGNATURE", f"topic by {line.author}: {verdict.value}")
        self.clock = max(self.clock, line.clock)
        self._apply_topic(line)

    def _apply_topic(self, line: wire.SignedLine) -> None:
        key = _ckey(line.target)
        old = self._topics.get(key)
        if old is not None and _topic_order(old) >= _topic_order(line):
            return  # last writer wins: same order on every peer, so every peer converges
        if key not in self._display:
            if len(self._display) >= MAX_CHANNELS:
                return
            self._display[key] = line.target
        self._topics[key] = line
        self._events.append(ev.TopicChanged(self._display[key], line.text, line.author,
                                            key in self._joined))

    def _on_away(self, peer: str, pkey: str, text: str | None, *, fresh: bool) -> None:
        if self._away.get(pkey) == text:
            return
        if text is None:
            self._away.pop(pkey, None)
        else:
            self._away[pkey] = text
        self._events.append(ev.AwayChanged(peer, text, fresh))

    def _on_rename(self, peer: str, pkey: str, new: str) -> None:
        nkey = _nkey(new)
        if nkey == pkey:
            return
        if nkey in self._online or nkey == _nkey(self.me):
            # a real rename registers the new name first: nobody online holds it
            raise ProtocolError("NICK_IN_USE", f"{peer} renames itself to {new}, who is online")
        self._online.pop(pkey, None)
        self._online[nkey] = new
        for table in (self._away, self._buckets):
            if pkey in table:
                table[nkey] = table.pop(pkey)  # type: ignore[index]
        for members in self._members.values():
            if members.pop(pkey, None) is not None:
                members[nkey] = new
        self._events.append(ev.Renamed(peer, new))

    def _on_line(self, peer: str, pkey: str, line: wire.SignedLine) -> None:
        if _nkey(line.author) != pkey:
            raise ProtocolError("NOT_AUTHOR", f"{peer} sent a line by {line.author}")
        verdict = wire.verify_line(line, self._key_of(line.author))
        if verdict is not wire.Verdict.OK:
            raise ProtocolError("BAD_SIGNATURE", f"line by {line.author}: {verdict.value}")
        if line.is_channel:
            key = _ckey(line.target)
            if key not in self._joined or pkey not in self._members.get(key, {}):
                raise ProtocolError("NOT_MEMBER", f"{peer} wrote to {line.target} as a "
                                    "non-member, or we are not in it")
            if self._remember(line.msg_id):
                self._events.append(_line_event(line, self._display[key], peer))
            return
        if _nkey(line.target) != _nkey(self.me):
            raise ProtocolError("NOT_FOR_US", f"{peer} sent a private line for {line.target}")
        self._send([peer], wire.Receipt((line.msg_id,)))  # the engine stores before sending
        if self._remember(line.msg_id):
            self._events.append(_line_event(line, None, peer))
        if self.away_text is not None and pkey not in self._replied:
            self._replied.add(pkey)
            self._send([peer], wire.AutoReply(line.msg_id, self.away_text))

    # --- helpers ---------------------------------------------------------------------------
    def _sign(self, target: str, kind: wire.Kind, text: str, now: float) -> wire.SignedLine:
        return wire.sign_line(self._key, author=self.me, target=target, kind=kind, text=text,
                              ts_ms=int(now * 1000), clock=self.clock)

    def _send(self, peers: list[str], msg: wire.Message) -> None:
        if peers:
            self._sends.append(ev.Send(tuple(peers), wire.encode(msg)))

    def _online_peers(self) -> list[str]:
        return list(self._online.values())

    def _our_channel(self, channel: str | None) -> str:
        if channel is None:
            if self.current is None:
                raise ChannelError("you are in no channel; /join #name first")
            return self.current
        display, key = names.normalize(channel)
        if key not in self._joined:
            raise ChannelError(f"you are not in {display}; /join {display} first")
        return self._joined[key]

    def _forget_if_empty(self, key: str) -> None:
        if key not in self._joined and not self._members.get(key):
            self._members.pop(key, None)
            self._topics.pop(key, None)
            self._display.pop(key, None)

    def _remember(self, msg_id: bytes) -> bool:
        """True the first time ``msg_id`` is seen (bounded memory)."""
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return True


def _ckey(channel: str) -> str:
    return names.channel_key(channel)


def _cut(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _topic_order(line: wire.SignedLine) -> tuple[int, bytes, bytes]:
    return (line.clock, line.author_key, line.msg_id)


def _line_event(line: wire.SignedLine, channel: str | None, sender: str,
                history: bool = False) -> ev.ChatEvent:
    """The face event for a verified line (live, or from history/backfill with ``history``)."""
    if line.kind == wire.Kind.ACTION:
        return ev.Action(sender, line.text, channel, line, history)
    if channel is not None:
        return ev.ChannelMessage(channel, sender, line.text, line, history)
    return ev.PrivateLine(sender, line.text, line, history)


def line_event(line: wire.SignedLine, me: str, history: bool = True) -> ev.ChatEvent:
    """The face event for a stored line (history replay, backfill); ``me`` for private lines
    we wrote ourselves shown as ours."""
    channel = line.target if line.is_channel else None
    if line.kind == wire.Kind.TOPIC:
        return ev.TopicChanged(line.target, line.text, line.author, True, history)
    return _line_event(line, channel, line.author, history)
