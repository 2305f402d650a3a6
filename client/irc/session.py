"""One IRC connection, sans-IO: registration, capabilities, keep-alive, flood limit, and the
dispatch of commands (``client.irc.handlers``) and engine events (``client.irc.replies``).

The IO edge (``client.irc.server``) feeds it ``receive(data, now)``, ``on_event(event)``,
``on_timer(now)`` at ``next_deadline()``, writes ``take_output()`` and closes the socket once
``closed`` is set and the output is written. Every OpenLChat action goes through ``ChatApi``
(a declared Protocol; the engine's ``chat``); nothing here keeps chat state of its own beyond
what this IRC client was told (channels, topics), so a new connection starts afresh.

Registration: ``PASS`` (checked when a password is set), ``NICK``, ``USER``, and ``CAP`` LS/REQ/
END (``server-time``, ``away-notify``), then 001-005, a MOTD, and each channel we are in with
its topic, names and last lines. The IRC nickname is the OpenLChat nickname: 001 names the
engine's, whatever the client asked for (as bouncers do); ``NICK`` later renames us.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from client.chat import names
from client.chat.api import ChatApi
from client.irc import protocol as p
from client.irc.handlers import Commands
from client.irc.replies import SERVER, SUPPORTED_CAPS, EventLines, Out
from models import nickname
from models.errors import ProtocolError

log = logging.getLogger(__name__)

PING_IDLE = 90.0  # seconds of silence before we PING the client
PING_TIMEOUT = 120.0  # seconds to answer it
REGISTER_TIMEOUT = 60.0
FLOOD_RATE = 2000.0  # lines per second, sustained (the gateway carries 1,000 lines/s)
FLOOD_BURST = 4000.0
HISTORY_LINES = 50  # lines of each channel replayed on join and on attach
VERSION = "openlchat-irc-1"


@dataclass(frozen=True)
class Limits:
    flood_rate: float = FLOOD_RATE
    flood_burst: float = FLOOD_BURST
    ping_idle: float = PING_IDLE
    ping_timeout: float = PING_TIMEOUT
    register_timeout: float = REGISTER_TIMEOUT
    history: int = HISTORY_LINES


DEFAULT_LIMITS = Limits()


def isupport() -> tuple[str, ...]:
    return ("CHANTYPES=#", "CASEMAPPING=rfc7613", f"NICKLEN={nickname.MAX_NICK_LEN}",
            f"CHANNELLEN={names.MAX_CHANNEL_LEN + 1}", "NETWORK=OpenLChat", "PREFIX=",
            "CHANMODES=,,,n", "TOPICLEN=300", "AWAYLEN=200", "UTF8ONLY")


class Session:
    def __init__(self, api: ChatApi, now: float, *, password: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.api = api
        self.limits = limits
        self.out = Out(nick="*")
        self.lines = EventLines(self.out)
        self.commands = Commands(api, self.out, self.lines, limits.history)
        self.registered = False
        self.closed = False
        self._password = password
        self._given_password: str | None = None
        self._wanted_nick: str | None = None
        self._user = False
        self._negotiating = False
        self._reader = p.LineReader()
        self._tokens = limits.flood_burst
        self._tokens_at = now
        self._last_rx = now
        self._started = now
        self._ping_sent: float | None = None

    # --- edge inputs ---------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        self._last_rx = now
        self._ping_sent = None
        for item in self._reader.feed(data):
            if self.closed:
                return
            if not self._take_token(now):
                self.close("Excess Flood")
                return
            if isinstance(item, ProtocolError):
                self._bad_line(item)
            else:
                self._dispatch(item)

    def on_event(self, event: object, ts: float | None = None) -> None:
        """An engine event (``ts``: when it happened, for one replayed after a reattach)."""
        if self.closed or not self.registered:
            return
        try:
            self.lines.event(event, ts)
        except Exception:  # our bug: one event lost, not the connection
            log.exception("IRC: cannot translate %s", type(event).__name__)

    def on_timer(self, now: float) -> None:
        if self.closed:
            return
        if not self.registered and now - self._started >= self.limits.register_timeout:
            self.close("Registration timed out")
        elif self._ping_sent is not None:
            if now - self._ping_sent >= self.limits.ping_timeout:
                self.close("Ping timeout")
        elif now - self._last_rx >= self.limits.ping_idle:
            self._ping_sent = now
            self.out.send(p.message("PING", SERVER))

    def next_deadline(self) -> float:
        if not self.registered:
            return self._started + self.limits.register_timeout
        if self._ping_sent is not None:
            return self._ping_sent + self.limits.ping_timeout
        return self._last_rx + self.limits.ping_idle

    def take_output(self) -> bytes:
        return self.out.take()

    def close(self, reason: str) -> None:
        """Say why in an ERROR line; the edge closes the socket after writing it."""
        if not self.closed:
            self.out.send(p.message("ERROR", f"Closing link: {reason}"))
            self.closed = True

    # --- dispatch ------------------------------------------------------------------------------
    def _take_token(self, now: float) -> bool:
        elapsed = max(0.0, now - self._tokens_at)
        self._tokens = min(self.limits.flood_burst, self._tokens + elapsed * self.limits.flood_rate)
        self._tokens_at = now
        self._tokens -= 1.0
        return self._tokens >= 0.0

    def _bad_line(self, err: ProtocolError) -> None:
        log.debug("IRC: bad line: %s", err)
        if err.code == "LINE_TOO_LONG" or err.code == "TAGS_TOO_LONG":
            self.out.numeric("417", "Input line was too long")

    def _dispatch(self, m: p.Message) -> None:
        try:
            self._command(m)
        except Exception:  # our bug: say so, keep the connection
            log.exception("IRC: %s failed", m.command)
            self.out.notice(f"internal error while handling {m.command}; see the log")

    def _command(self, m: p.Message) -> None:
        cmd = m.command
        if cmd == "PING":
            self.out.from_server("PONG", SERVER, m.param(0, SERVER))
        elif cmd == "PONG":
            pass  # receive() already counted it as a sign of life
        elif cmd == "QUIT":
            self.close(f"Quit: {m.param(0)}" if m.param(0) else "Quit")
        elif cmd == "CAP":
            self._cap(m)
        elif not self.registered:
            self._register(m)
        elif cmd in ("PASS", "USER"):
            self.out.numeric("462", "You may not reregister")
        elif cmd == "MOTD":
            self._motd()
        elif cmd in self.commands.table:
            self.commands.table[cmd](m)
        elif self.commands.is_openlchat_command(cmd):
            self.commands.openlchat_command(" ".join(["/" + cmd.lower(), *m.params]))
        else:
            self.out.numeric("421", cmd, "Unknown command")

    # --- registration --------------------------------------------------------------------------
    def _register(self, m: p.Message) -> None:
        if m.command == "PASS":
            self._given_password = m.param(0)
        elif m.command == "NICK":
            if not m.params:
                self.out.numeric("431", "No nickname given")
                return
            try:
                self._wanted_nick = nickname.display_form(m.params[0])
            except ProtocolError as exc:
                self.out.numeric("432", m.params[0], exc.text)
                return
        elif m.command == "USER":
            if len(m.params) < 4:
                self.out.numeric("461", "USER", "Not enough parameters")
                return
            self._user = True
        else:
            self.out.numeric("451", "You have not registered")
            return
        self._maybe_welcome()

    def _cap(self, m: p.Message) -> None:
        sub = m.param(0).upper()
        if sub == "LS":
            if not self.registered:
                self._negotiating = True
            self.out.from_server("CAP", self.out.nick, "LS", " ".join(SUPPORTED_CAPS))
        elif sub == "LIST":
            on = [name for name, flag in (("server-time", self.out.caps.server_time),
                                          ("away-notify", self.out.caps.away_notify)) if flag]
            self.out.from_server("CAP", self.out.nick, "LIST", " ".join(on))
        elif sub == "REQ":
            if not self.registered:
                self._negotiating = True
            wanted = m.param(1).split()
            if all(w.lstrip("-") in SUPPORTED_CAPS for w in wanted):
                for w in wanted:
                    self._set_cap(w.lstrip("-"), not w.startswith("-"))
                self.out.from_server("CAP", self.out.nick, "ACK", m.param(1))
            else:
                self.out.from_server("CAP", self.out.nick, "NAK", m.param(1))
        elif sub == "END":
            self._negotiating = False
            if not self.registered:
                self._maybe_welcome()
        else:
            self.out.numeric("410", sub or "*", "Invalid CAP command")

    def _set_cap(self, name: str, on: bool) -> None:
        if name == "server-time":
            self.out.caps.server_time = on
        else:
            self.out.caps.away_notify = on

    def _maybe_welcome(self) -> None:
        if self._wanted_nick is None or not self._user or self._negotiating:
            return
        if self._password is not None and not hmac.compare_digest(
                (self._given_password or "").encode(), self._password.encode()):
            self.out.numeric("464", "Password incorrect")
            self.close("Bad password")
            return
        self.registered = True
        nick = self.out.nick = self.api.nickname
        self.out.numeric("001", f"Welcome to OpenLChat, {nick}: peer to peer, end-to-end "
                                "encrypted, no IRC server anywhere")
        self.out.numeric("002", f"Your host is {SERVER}, running {VERSION}")
        self.out.numeric("003", "This gateway runs inside your own OpenLChat client")
        self.out.numeric("004", SERVER, VERSION, "i", "n")
        self.out.numeric("005", *isupport(), "are supported by this server")
        self._motd()
        self.commands.show_channels()

    def _motd(self) -> None:
        self.out.numeric("375", f"- {SERVER} Message of the day -")
        for text in ("- Your messages go peer to peer, end-to-end encrypted.",
                     "- /whois NICK shows a peer's key fingerprint; compare it, then",
                     "- /quote VERIFY NICK (or /msg *openlchat* verify NICK).",
                     "- /msg *openlchat* help lists OpenLChat's own commands."):
            self.out.numeric("372", text)
        self.out.numeric("376", "End of /MOTD command")
