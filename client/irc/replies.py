"""What the gateway says: numerics, user lines, ``*openlchat*`` notices, and engine events as
IRC lines (the event half of the mapping in docs/PROTOCOL.md, "IRC gateway").

``Out`` collects encoded lines for one connection; ``EventLines`` turns one engine event into
lines for it. Peer text is hostile: each of its line breaks starts a new IRC line, CR and NUL
are dropped, and long text is cut to fit 512 bytes (never inside a character).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from client import events as cev
from client.chat import events as ev
from client.chat import lines as chat_lines
from client.chat import names
from client.chat.channels import line_event
from client.chat.wire import SignedLine
from client.irc import protocol as p
from client.terminal import format_event

SERVER = "openlchat"
HOST = "openlchat"  # the host part of every user's prefix: addresses stay private
PSEUDO = "*openlchat*"  # the pseudo-user that speaks for the gateway
NOTICE_PREFIX = "-!- "
MAX_AWAY = 4096  # away texts remembered (one per peer; bounded against a flood of names)


def user_prefix(nick: str) -> str:
    return f"{nick}!{_user(nick)}@{HOST}"


def _user(nick: str) -> str:
    return "".join(ch for ch in nick if ch.isascii() and ch.isalnum())[:10] or "user"


def _word(text: str) -> str:
    text = text.replace(" ", "_") or "*"
    return "_" + text[1:] if text.startswith(":") else text


def same_nick(a: str, b: str) -> bool:
    return names.peer_key(a) == names.peer_key(b)


def server_time(ts: float) -> str:
    """IRCv3 ``server-time``: UTC with milliseconds."""
    ms = int(ts * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{ms:03d}Z"


@dataclass
class Caps:
    server_time: bool = False
    away_notify: bool = False


SUPPORTED_CAPS = ("server-time", "away-notify")


@dataclass
class Out:
    """Lines waiting to be written, with what the helpers need to address them."""

    nick: str
    caps: Caps = field(default_factory=Caps)
    data: bytearray = field(default_factory=bytearray)
    count: int = 0

    def send(self, msg: p.Message) -> None:
        self.data += p.format_message(msg)
        self.count += 1

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out

    def numeric(self, code: str, *params: str) -> None:
        """A numeric reply; middle parameters may echo what the client sent, so they are
        made into single words."""
        middle = tuple(_word(x) for x in params[:-1])
        self.send(p.message(code, self.nick or "*", *middle, *params[-1:], prefix=SERVER))

    def from_server(self, command: str, *params: str) -> None:
        self.send(p.message(command, *params, prefix=SERVER))

    def text(self, prefix: str, command: str, target: str, text: str,
             tags: dict[str, str] | None = None, ctcp: str = "") -> None:
        """``:prefix COMMAND target :text`` for each line of ``text``, cut to fit."""
        head = p.message(command, target, "", prefix=prefix)
        room = p.line_room(head) - (len(ctcp) + 3 if ctcp else 0)
        for line in p.clean_text(text):
            for piece in p.split_to_fit(line, room):
                body = f"\x01{ctcp} {piece}\x01" if ctcp else piece
                self.send(p.message(command, target, body, prefix=prefix, tags=tags))

    def notice(self, text: str, ts: float | None = None) -> None:
        """A NOTICE from the ``*openlchat*`` pseudo-user."""
        self.text(f"{PSEUDO}!openlchat@{HOST}", "NOTICE", self.nick, text,
                  self._tags(ts))

    def _tags(self, ts: float | None) -> dict[str, str] | None:
        return {"time": server_time(ts)} if ts is not None and self.caps.server_time else None

    def history_text(self, text: str, ts: float) -> str:
        """Without ``server-time`` the time goes in front of a replayed line."""
        if self.caps.server_time:
            return text
        return time.strftime("[%H:%M] ", time.localtime(ts)) + text

    def chat_line(self, sender: str, target: str, text: str, *, action: bool = False,
                  ts: float | None = None) -> None:
        """A PRIVMSG (an ACTION for ``/me``); ``ts`` set: a line from history."""
        if ts is not None:
            text = self.history_text(text, ts)
        self.text(user_prefix(sender), "PRIVMSG", target, text, self._tags(ts),
                  ctcp="ACTION" if action else "")


def kept_while_detached(event: object) -> bool:
    """Whether an event that came while no IRC client was attached is replayed to the next
    one: not channel lines (replayed from history), nor memberships, topics and renames (the
    next client is told the channels as they are then)."""
    if isinstance(event, ev.ChannelMessage) or (isinstance(event, ev.Action)
                                                and event.channel is not None):
        return False
    return not isinstance(event, ev.ChannelJoined | ev.ChannelParted | ev.TopicChanged
                          | ev.Renamed | ev.AwayChanged | cev.Joined | cev.Left
                          | cev.Registered | cev.FileProgress)


def notice_text(terminal_line: str) -> str:
    """A terminal ``-!- ...`` line as notice text (the words are the terminal's)."""
    return "\n".join(x[len(NOTICE_PREFIX):] if x.startswith(NOTICE_PREFIX) else x
                     for x in terminal_line.split("\n"))


class EventLines:
    """Engine events as IRC lines for one connection. Our own joins, parts, renames and away
    changes were answered when the IRC client asked; the events repeating them are skipped."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.joined: dict[str, str] = {}  # channel key -> display name, as the client knows
        self.topics: dict[str, str] = {}  # channel key -> topic text, as the client knows
        self.away: dict[str, str] = {}  # peer key -> away text, as events told (WHO's H/G)

    def line(self, line: SignedLine, *, history: bool = True) -> None:
        """A stored line (history replay)."""
        me = self.out.nick
        event = line_event(line, me, history=history)
        if isinstance(event, ev.TopicChanged):
            return
        if not line.is_channel and same_nick(line.author, me):  # ours: to its recipient
            self.out.chat_line(me, line.target, line.text,
                               action=isinstance(event, ev.Action), ts=line.ts_ms / 1000)
            return
        self.chat_event(event)  # type: ignore[arg-type]

    def chat_event(self, e: ev.ChannelMessage | ev.PrivateLine | ev.Action,
                   ts: float | None = None) -> None:
        """A chat line; from history (or ``ts`` set: replayed after a reattach) with its time."""
        ts = e.line.ts_ms / 1000 if e.history else ts
        if e.warning:
            self.out.notice(f"WARNING: {e.warning} ({e.sender})", ts)
        if isinstance(e, ev.ChannelMessage):
            self.out.chat_line(e.sender, e.channel, e.text, ts=ts)
        elif isinstance(e, ev.PrivateLine):
            self.out.chat_line(e.sender, self.out.nick, e.text, ts=ts)
        else:
            self.out.chat_line(e.sender, e.channel or self.out.nick, e.text, action=True, ts=ts)

    def event(self, event: object, ts: float | None = None) -> None:
        """One event from the engine's queue; ``ts`` set: replayed after a reattach."""
        if isinstance(event, ev.ChannelMessage | ev.PrivateLine | ev.Action):
            self.chat_event(event, ts)
        elif isinstance(event, ev.ChannelJoined):
            self._joined(event)
        elif isinstance(event, ev.ChannelParted):
            self._parted(event)
        elif isinstance(event, ev.TopicChanged):
            self._topic(event)
        elif isinstance(event, ev.AwayChanged):
            self._note_away(event)
            if self.out.caps.away_notify and not same_nick(event.nick, self.out.nick):
                params = () if event.text is None else (event.text,)
                self.out.send(p.message("AWAY", *params, prefix=user_prefix(event.nick)))
        elif isinstance(event, ev.Renamed):
            self._renamed(event)
        elif isinstance(event, ev.AwayReply):
            self.out.numeric("301", event.nick, event.text)
        elif isinstance(event, ev.Waiting | ev.DeliveredLater | ev.Failed):
            self.out.notice(notice_text(chat_lines.format_chat_event(event) or ""), ts)
        elif isinstance(event, cev.Left):
            if event.rename:
                return  # half of a peer's rename: its NICK line said it
            self.out.send(p.message("QUIT", "left OpenLChat",
                                    prefix=user_prefix(event.nickname)))
        elif isinstance(event, cev.RoomMessage | cev.PrivateMessage):
            self._legacy(event, ts)
        elif isinstance(event, cev.Joined | cev.Registered | cev.FileProgress):
            pass  # the roster (IRC shows channel members) and progress (too chatty for IRC)
        else:
            text = format_event(event)
            if text is not None:
                self.out.notice(notice_text(text), ts)

    def _legacy(self, e: cev.RoomMessage | cev.PrivateMessage, ts: float | None) -> None:
        """The room and private messages of peers without channels (client/events.py)."""
        if e.warning:
            self.out.notice(f"WARNING: {e.warning} ({e.sender})", ts)
        target = names.ROOM if isinstance(e, cev.RoomMessage) else self.out.nick
        self.out.chat_line(e.sender, target, e.text, ts=ts)

    def _joined(self, e: ev.ChannelJoined) -> None:
        key = names.channel_key(e.channel)
        if same_nick(e.nick, self.out.nick):
            if key not in self.joined:  # joined by the engine, not asked by this client
                self.joined[key] = e.channel
                self.out.send(p.message("JOIN", e.channel, prefix=user_prefix(e.nick)))
        elif e.mine and key in self.joined:
            self.out.send(p.message("JOIN", self.joined[key], prefix=user_prefix(e.nick)))

    def _parted(self, e: ev.ChannelParted) -> None:
        key = names.channel_key(e.channel)
        if key not in self.joined:
            return
        if same_nick(e.nick, self.out.nick):
            del self.joined[key]
            self.topics.pop(key, None)
        elif e.quit:
            return  # the roster's Left says QUIT once for every channel
        params = (e.channel, e.reason) if e.reason else (e.channel,)
        self.out.send(p.message("PART", *params, prefix=user_prefix(e.nick)))

    def _note_away(self, e: ev.AwayChanged) -> None:
        key = names.peer_key(e.nick)
        if e.text is None:
            self.away.pop(key, None)
        elif len(self.away) < MAX_AWAY or key in self.away:
            self.away[key] = e.text

    def is_away(self, nick: str) -> bool:
        return names.peer_key(nick) in self.away

    def _renamed(self, e: ev.Renamed) -> None:
        if same_nick(e.new, self.out.nick):
            return  # ours: answered when the client asked
        if same_nick(e.old, self.out.nick):
            self.out.nick = e.new  # renamed by the engine itself
        self.out.send(p.message("NICK", e.new, prefix=user_prefix(e.old)))

    def _topic(self, e: ev.TopicChanged) -> None:
        key = names.channel_key(e.channel)
        if key not in self.joined or self.topics.get(key) == e.text:
            return
        self.topics[key] = e.text
        self.out.send(p.message("TOPIC", e.channel, e.text.replace("\n", " "),
                                prefix=user_prefix(e.setter)))
