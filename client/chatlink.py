"""``engine.chat``: the engine's ``ChatApi`` (channels, people, history, files) and the glue that
drives ``client.chat.service.ChatService`` on the engine thread.

The engine calls, on its own thread: ``attach`` once registered (history opened in the data
directory, saved channels rejoined, each roster peer met), ``on_control`` / ``on_undelivered``
for ``b"C"`` control payloads (through ``PeerLink``), ``on_roster`` for roster changes,
``server_back``, ``on_timer`` at ``next_deadline``, ``label`` on each event it emits (the roster
lines of a peer's announced rename are marked), ``close`` when its thread ends. After each of
these the service's sends leave as ``KIND_CONTROL`` messages and its events go onto the face
queue (``client.chat.events``), in order.

Faces (terminal, GUI, IRC gateway) call the ``ChatApi`` methods from their own threads; each
runs on the engine thread through the bridge and raises ``ClientError``s in plain words.

Without an identity key (the plain transport of tests and benchmarks), or switched off
(``Engine(chat=False)``: tests of the engine core), there are no signed lines: plain text and
``/msg`` use today's room and private messages, channel commands say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.signing

from client import config
from client import events as ev
from client.chat import events as cev
from client.chat import names, wire
from client.chat.api import PersonInfo, TopicInfo
from client.chat.channels import ChannelError, ChannelInfo
from client.chat.history import History, conversation_key
from client.chat.service import ChatService
from client.contracts import Transport
from client.errors import (
    ClientError,
    MessageTooLarge,
    RegistrationError,
    ServerUnreachable,
    UnknownPeer,
)
from client.peer.messenger import KIND_CONTROL, KIND_PRIVATE, KIND_ROOM, MAX_MESSAGE
from client.reach.merged import MergedRoster
from client.serverlink.link import ServerLink
from client.serverlink.registration import enroll
from client.serverlink.roster import Changes
from client.serverlink.session import SavedSession
from models import nickname as nicks
from models.errors import ProtocolError

if TYPE_CHECKING:
    from client.engine import Engine

log = logging.getLogger(__name__)

RENAME_GRACE = 30.0  # seconds a peer's announced rename marks its roster leave and join
RENAME_SETTLE = 1.5  # seconds our RENAME may take to be acknowledged before we move
REGISTER_TIMEOUT = 5.0
WHOIS_WAIT = 1.5  # seconds /whois waits for a handshake to bring a peer's key
EVERYTHING = "*"
NO_CRYPTO = "channels, history and /nick need the encrypted transport (this client runs without)"


class CommandFailed(ClientError):
    """A command the engine could not carry out (a file that cannot be read...)."""


@dataclass(frozen=True)
class ChatParts:
    """What the chat glue uses of the engine's parts (engine thread only, but ``call``)."""

    roster: MergedRoster
    transport: Transport
    server: Callable[[], ServerLink | None]  # None in LAN mode (no server found yet)
    session: Callable[[], SavedSession | None]
    send: Callable[[list[str], int, bytes, float], int]
    call: Callable[[Callable[[float], Any]], Any]
    emit: Callable[[ev.Event], None]
    adopted: Callable[[], None]  # the server channel has a new registration: take its nickname
    key: nacl.signing.SigningKey | None


def _shown(s: ChatService, channel: str) -> str:
    """A channel's name as its members spell it (``#Games`` for a typed ``#games``)."""
    key = names.channel_key(channel)
    known = (c.name for c in s.channels.channels() if names.channel_key(c.name) == key)
    return next(known, names.display_form(channel))


class ChatLink:
    def __init__(self, engine: Engine, data_dir: Path | None, config_dir: Path | None, *,
                 enabled: bool = True) -> None:
        self._engine = engine
        self._enabled = enabled
        self._data_dir, self._config_dir = data_dir, config_dir
        self._p: ChatParts | None = None
        self.service: ChatService | None = None
        self._renames: dict[tuple[type, str], float] = {}  # (Left|Joined, peer key) -> until
        self._saved: list[str] | None = None
        self._channels_path: Path | None = None
        # the chat layer stamps lines with wall-clock time (they are compared across peers
        # and restarts); the engine's ``now`` is monotonic: this is the difference
        self._wall = time.time() - time.monotonic()

    @property
    def nickname(self) -> str:
        return self._engine.nickname

    @property
    def available(self) -> bool:
        return self.service is not None

    # ------------------------------------------------------------------ engine thread
    def attach(self, parts: ChatParts, now: float) -> None:
        self._p = parts
        if parts.key is None or not self._enabled:
            return
        where = config.data_dir(self._data_dir, beside=self._config_dir)
        # one file per nickname: clients of one user (or sharing a config folder) keep apart,
        # else a line stored by one would count as "seen before" by the other
        stem = hashlib.sha256(nicks.canonical(self.nickname).encode()).hexdigest()[:24]
        self._channels_path = where / f"channels-{stem}.json"
        history = History(where / f"history-{stem}.sqlite3", self.nickname)
        own = bytes(parts.key.verify_key)

        def key_of(nick: str) -> bytes | None:
            if self.service is not None and names.peer_key(nick) == names.peer_key(
                    self.service.me):
                return own
            return parts.transport.identity_key(nick)

        self.service = svc = ChatService(self.nickname, parts.key, key_of, history)
        self._saved = self._load_channels()
        svc.start(self._saved, now + self._wall)
        for peer in parts.roster.nicknames():
            svc.peer_online(peer, now + self._wall)
        self._flush(now)
        history.db.close()  # the caller's connection; the engine thread opens its own

    def on_control(self, peer: str, payload: bytes, now: float) -> None:
        self._feed(lambda svc, wall: svc.on_control(peer, payload, wall), now)

    def on_undelivered(self, peer: str, payload: bytes, now: float) -> None:
        self._feed(lambda svc, wall: svc.on_undelivered(peer, payload, wall), now)
        line = _channel_line(payload)
        if line is not None and self._p is not None:
            # a channel line never acknowledged by a member: said as for today's room messages
            # (private lines wait in the outbox instead)
            self._p.emit(ev.NotDelivered(peer, line.text, 0))

    def on_roster(self, changes: Changes, now: float) -> None:
        def go(svc: ChatService, wall: float) -> None:
            for nick in changes.left:
                svc.peer_gone(nick, wall)
            for nick in changes.joined:
                svc.peer_online(nick, wall)

        if changes:
            self._feed(go, now)

    def server_back(self, now: float) -> None:
        self._feed(lambda svc, wall: svc.server_back(wall), now)

    def on_timer(self, now: float) -> None:
        due = self.next_deadline()
        if due is not None and now >= due:
            self._feed(lambda svc, wall: svc.on_timer(wall), now)
        for key in [k for k, until in self._renames.items() if now > until]:
            del self._renames[key]

    def _feed(self, fn: Callable[[ChatService, float], None], now: float) -> None:
        """Hand the service an input on the engine thread; a bug in the chat layer is logged,
        it never stops the engine (the peers' input reaching it is hostile)."""
        if self.service is None:
            return
        try:
            fn(self.service, now + self._wall)
            self._flush(now)
        except Exception:
            log.exception("chat layer failed")

    def next_deadline(self) -> float | None:
        due = None if self.service is None else self.service.next_deadline()
        return None if due is None else due - self._wall

    def label(self, event: ev.Event) -> ev.Event:
        """A roster leave or join that is half of a peer's announced rename, marked so."""
        if self._renames and isinstance(event, ev.Left | ev.Joined):
            key = (type(event), names.peer_key(event.nickname))
            if self._renames.pop(key, None) is not None:
                return dataclasses.replace(event, rename=True)
        return event

    def close(self) -> None:
        if self.service is not None:
            self.service.history.close()

    def _flush(self, now: float) -> None:
        svc, p = self.service, self._p
        assert svc is not None and p is not None
        for send in svc.take_sends():
            peers = [x for x in send.peers if x in p.roster]
            if peers:
                p.send(peers, KIND_CONTROL, send.payload, now)
        for event in svc.take_events():
            mine = isinstance(event, cev.Renamed) and names.peer_key(event.new) == names.peer_key(
                svc.me)
            if isinstance(event, cev.ChannelMessage | cev.PrivateLine | cev.Action) \
                    and not event.history:
                warning = p.transport.warning_for(event.sender)
                if warning:
                    event = dataclasses.replace(event, warning=warning)
            if isinstance(event, cev.Renamed) and not mine:
                self._renames[(ev.Left, names.peer_key(event.old))] = now + RENAME_GRACE
                self._renames[(ev.Joined, names.peer_key(event.new))] = now + RENAME_GRACE
            p.emit(event)
        joined = svc.channels.joined()
        if joined != self._saved:
            self._saved = joined
            self._save_channels(joined)

    def _load_channels(self) -> list[str]:
        assert self._channels_path is not None
        data = config.load_json(self._channels_path).get("channels", [])
        return [c for c in data if isinstance(c, str)] if isinstance(data, list) else []

    def _save_channels(self, channels: list[str]) -> None:
        assert self._channels_path is not None
        try:
            config.save_json(self._channels_path, {"channels": channels}, private=True)
        except OSError as exc:
            log.warning("cannot save the channel list: %s", exc)

    # ------------------------------------------------------------------ caller side
    def _need(self) -> ChatService:
        if self.service is None:
            raise ChannelError(NO_CRYPTO)
        return self.service

    def _do(self, fn: Callable[[ChatService, float], Any]) -> Any:
        svc = self._need()
        assert self._p is not None

        def go(now: float) -> Any:
            try:
                return fn(svc, now + self._wall)
            except ClientError:
                raise
            except ProtocolError as exc:
                raise ChannelError(exc.text) from None
            except ValueError as exc:  # over the wire's bounds (4000 bytes) or empty
                raise MessageTooLarge(f"message too long, not sent: {exc}") from None
            finally:
                self._flush(now)

        return self._p.call(go)

    # talking
    def say(self, text: str) -> None:
        if self.service is None:
            self._legacy(lambda: self._engine.send_room(text))
        elif not self._long(None, text):
            self._do(lambda s, now: s.say(None, text, now))

    def message(self, target: str, text: str) -> None:
        if self.service is None or not self._long(target, text):
            self._to(target, text, wire.Kind.MESSAGE)

    def _long(self, target: str | None, text: str) -> bool:
        """A text over a chat line's 4000 bytes goes as today's room or private message (up
        to 64 KiB, to who is online now, not kept in history); True if it went so."""
        if len(text.encode("utf-8", "surrogatepass")) <= wire.MAX_TEXT:
            return False
        payload = text.encode("utf-8", "surrogatepass")
        if len(payload) > MAX_MESSAGE:
            raise MessageTooLarge(f"message too long, not sent: {len(payload)} bytes; the "
                                  f"limit is {MAX_MESSAGE} bytes")

        def go(s: ChatService, now: float) -> None:
            p = self._p
            assert p is not None
            where = target or s.channels.current or ""
            if names.same_channel(where, names.ROOM):
                peers, kind = [m for m in s.channels.members(names.ROOM) if m in p.roster], \
                    KIND_ROOM
            elif not where.startswith(names.PREFIX) and (peer := p.roster.resolve(where)):
                peers, kind = [peer], KIND_PRIVATE
            else:
                raise MessageTooLarge(f"message too long, not sent: {len(payload)} bytes; the "
                                      f"limit is {wire.MAX_TEXT} bytes here")
            if peers:
                p.send(peers, kind, payload, now - self._wall)  # wall -> engine time

        self._do(go)
        return True

    def action(self, target: str | None, text: str) -> None:
        if target is None:
            self._do(lambda s, now: s.say(None, text, now, wire.Kind.ACTION))
        else:
            self._to(target, text, wire.Kind.ACTION)

    def _to(self, target: str, text: str, kind: wire.Kind) -> None:
        if self.service is None and not names.is_channel(target) and kind == wire.Kind.MESSAGE:
            self._legacy(lambda: self._engine.send_private(target, text), target)
            return

        self._need()
        p = self._p
        assert p is not None

        def go(s: ChatService, now: float) -> None:
            nick = target
            if not target.startswith(names.PREFIX):
                nick = p.roster.resolve(target) or target
                # waiting only for someone we met (a pinned key): a message to a name
                # nobody ever used must not wait for whoever takes it first
                if nick not in p.roster and p.transport.identity_key(nick) is None:
                    raise UnknownPeer(f"no such nick: {target} is not online")
            s.message(nick, text, now, kind)

        self._do(go)

    def _legacy(self, send: Callable[[], object], nick: str = "") -> None:
        try:
            send()
        except MessageTooLarge as exc:
            raise MessageTooLarge(f"message too long, not sent: {exc}") from None
        except UnknownPeer:
            raise UnknownPeer(f"no such nick: {nick} is not online") from None

    # people
    def who(self) -> list[str]:
        return sorted([self.nickname, *self._engine.roster()], key=str.casefold)

    def whois(self, nick: str) -> PersonInfo | None:
        info = self._engine.whois_fetched(nick, WHOIS_WAIT)
        if info is None:
            return None
        away, common = None, ()
        if self.service is not None:
            away, common = self._do(lambda s, now: (s.channels.away_of(info.nickname),
                                                    tuple(s.channels.common_channels(
                                                        info.nickname))))
        return PersonInfo(info.nickname, info.fingerprint, info.verified, info.key_changed,
                          info.address, away, common, info.path)

    def verify(self, nick: str) -> bool:
        peer = self._engine.resolve(nick)
        if peer is None:
            raise UnknownPeer(f"no such nickname online: {nick}")
        return self._engine.mark_verified(peer)

    def away(self, text: str | None) -> None:
        self._do(lambda s, now: s.set_away(text, now))

    def rename(self, new: str) -> None:
        """Register ``new`` (TCP, on this thread), tell every peer from our current session,
        let that be acknowledged, then move: QUIT the old registration, ping as the new."""
        self._need()
        p = self._p
        assert p is not None
        display, key = nicks.normalize(new)
        if key == nicks.canonical(self.nickname):
            raise ChannelError(f"you are {self.nickname} already")
        server, session = p.server(), p.session()
        if server is None or session is None:
            raise ChannelError("changing your nickname needs the server (it keeps names "
                               "unique); none is reachable right now")
        try:  # the MAC extension's state and the saved session follow the new registration
            reg, auth = enroll(server.server, display, session, timeout=REGISTER_TIMEOUT)
        except (RegistrationError, ServerUnreachable) as exc:
            session.claim(self.nickname)  # still who we were
            raise ChannelError(f"cannot become {display}: {exc.text}") from None
        self._do(lambda s, now: s.rename(reg.nickname, now))
        self._engine.wait_idle(RENAME_SETTLE)

        def move(now: float) -> None:
            server.channel.moved(reg, auth, now)
            p.roster.rename_me(reg.nickname)
            self._engine.nickname = reg.nickname
            p.adopted()
            p.transport.rename(reg.nickname)
            if self.service is not None:
                self.service.history.me = reg.nickname
            server.flush(now)

        p.call(move)

    # channels
    def join(self, channel: str) -> str:
        return self._do(lambda s, now: s.join(channel, now))

    def part(self, channel: str | None, reason: str) -> str:
        return self._do(lambda s, now: s.part(channel, reason, now))

    def topic(self, channel: str | None) -> TopicInfo | None:
        def go(s: ChatService, now: float) -> TopicInfo | None:
            where = self._where(s, channel)
            line = s.channels.topic(where)
            return None if line is None else TopicInfo(_shown(s, where), line.text, line.author)

        return self._do(go)

    def set_topic(self, channel: str | None, text: str) -> None:
        self._do(lambda s, now: s.set_topic(channel, text, now))

    def list_channels(self) -> list[ChannelInfo]:
        return self._do(lambda s, now: s.channels.channels())

    def names(self, channel: str | None) -> tuple[str, list[str]]:
        def go(s: ChatService, now: float) -> tuple[str, list[str]]:
            where = self._where(s, channel)
            return _shown(s, where), s.channels.names(where)

        return self._do(go)

    @staticmethod
    def _where(s: ChatService, channel: str | None) -> str:
        where = channel or s.channels.current
        if where is None:
            raise ChannelError("you are in no channel; /join #name first")
        return where

    # history
    def history(self, target: str | None, count: int) -> list[wire.SignedLine]:
        return self._do(lambda s, now: s.recent(target, count))

    def search(self, text: str) -> list[wire.SignedLine]:
        return self._do(lambda s, now: s.history.search(text))

    def forget_history(self, target: str | None) -> int:
        def go(s: ChatService, now: float) -> int:
            if target == EVERYTHING:
                return s.history.forget(None)
            return s.history.forget(conversation_key(self._where(s, target)))

        return self._do(go)

    # files
    def offer_file(self, nick: str, path: Path) -> list[int]:
        peer = self._engine.resolve(nick)
        if peer is None:
            raise UnknownPeer(f"no such nick: {nick}")
        return self._file(lambda: self._engine.offer_files(peer, [path]))

    def accept_file(self, transfer_id: int) -> None:
        self._file(lambda: self._engine.accept_file(transfer_id))

    def decline_file(self, transfer_id: int) -> None:
        self._file(lambda: self._engine.decline_file(transfer_id))

    def cancel_file(self, transfer_id: int) -> None:
        self._file(lambda: self._engine.cancel_file(transfer_id))

    @staticmethod
    def _file(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ClientError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise CommandFailed(f"file: {exc}") from None

    # network
    def netcheck(self) -> list[str]:
        return self._engine.netcheck()


def _channel_line(payload: bytes) -> wire.SignedLine | None:
    """The channel line a chat payload carries, if any (undelivered payloads are our own)."""
    try:
        msg = wire.decode(payload)
    except ProtocolError:
        return None
    if isinstance(msg, wire.Line) and msg.line.is_channel:
        return msg.line
    return None
