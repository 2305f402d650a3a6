"""IRC commands of a registered client, each translated into one ``ChatApi`` call and its
replies (the command half of the mapping in docs/PROTOCOL.md, "IRC gateway").

Names are checked as the command table checks them (``client.chat.names``,
``models.nickname``); OpenLChat's own commands (``/verify``, ``/history``, ``/search``,
``/netcheck``, file commands ...) run through ``client.chat.commands`` when sent as raw IRC
commands (``/quote VERIFY bob``) or as a message to ``*openlchat*``.
"""

from __future__ import annotations

from collections.abc import Callable

from client.chat import commands as chat_commands
from client.chat import names
from client.chat.api import ChatApi
from client.chat.lines import format_history
from client.errors import ClientError
from client.irc import protocol as p
from client.irc.replies import HOST, PSEUDO, SERVER, EventLines, Out, same_nick, user_prefix
from models import nickname
from models.errors import ProtocolError

Handler = Callable[[p.Message], None]
REALNAME = "OpenLChat peer"
USER_ERRORS = (ClientError, ProtocolError, ValueError)  # our user's mistakes, in plain words
_IRC_ONLY = {"quit", "help"}  # table commands the IRC client has its own words for


def _channel(raw: str) -> str:
    return names.display_form(raw)


class Commands:
    """The registered client's commands; ``table`` maps an IRC command to its handler."""

    def __init__(self, api: ChatApi, out: Out, lines: EventLines, history: int) -> None:
        self.api = api
        self.out = out
        self.lines = lines
        self.history = history
        self.table: dict[str, Handler] = {
            "PRIVMSG": self.privmsg, "NOTICE": self.notice, "JOIN": self.join,
            "PART": self.part, "TOPIC": self.topic, "NAMES": self.names, "WHO": self.who,
            "WHOIS": self.whois, "AWAY": self.away, "NICK": self.nick, "LIST": self.list,
            "MODE": self.mode, "ISON": self.ison, "USERHOST": self.userhost,
        }

    @property
    def me(self) -> str:
        return self.out.nick

    # --- talking -----------------------------------------------------------------------------
    def privmsg(self, m: p.Message, *, quiet: bool = False) -> None:
        if not m.params:
            return None if quiet else self.out.numeric("411", "No recipient given (PRIVMSG)")
        if len(m.params) < 2 or not m.params[1]:
            return None if quiet else self.out.numeric("412", "No text to send")
        for target in m.params[0].split(","):
            self._say(target, m.params[1], quiet)

    def notice(self, m: p.Message) -> None:
        self.privmsg(m, quiet=True)  # never an automatic reply to a NOTICE (RFC 1459)

    def _say(self, target: str, text: str, quiet: bool) -> None:
        if target.lower() == PSEUDO:
            self.openlchat_command(text if text.startswith("/") else "/" + text)
            return
        action = None
        if text.startswith("\x01"):
            word, _, rest = text.strip("\x01").partition(" ")
            if word.upper() != "ACTION":
                return  # other CTCP requests have no OpenLChat meaning
            action = rest
        is_channel = target.startswith(names.PREFIX)
        try:
            where = _channel(target) if is_channel else nickname.display_form(target)
            if is_channel and names.channel_key(where) not in self.lines.joined:
                raise ClientError(f"you are not in {where}; /join {where} first")
            if action is not None:
                self.api.action(where, action)
            else:
                self.api.message(where, text)
        except USER_ERRORS as exc:
            if not quiet:
                self.out.numeric("404" if is_channel else "401", target, _words(exc))

    # --- channels ----------------------------------------------------------------------------
    def join(self, m: p.Message) -> None:
        if not m.params:
            return self.out.numeric("461", "JOIN", "Not enough parameters")
        if m.params[0] == "0":
            for display in list(self.lines.joined.values()):
                self.part(p.message("PART", display))
            return None
        for raw in m.params[0].split(","):
            try:
                display = _channel(raw)
            except ProtocolError as exc:
                self.out.numeric("403", raw, exc.text)
                continue
            if names.channel_key(display) in self.lines.joined:
                continue
            try:
                display = self.api.join(display)
            except USER_ERRORS as exc:
                self.out.numeric("405", display, _words(exc))
                continue
            self.show_join(display)  # its recent lines come as history events

    def show_channels(self) -> None:
        """At registration: each channel we are in, with its last lines."""
        if not self.api.available:
            self.out.notice("this OpenLChat client runs without channels (no chat layer): "
                            "only private messages work here")
            return
        joined = [info.name for info in self.api.list_channels() if info.joined]
        for display in joined:
            self.show_join(display)
            for line in self.api.history(display, self.history):
                self.lines.line(line)

    def show_join(self, display: str) -> None:
        """JOIN, topic and names of a channel we are in (after JOIN, or at registration)."""
        key = names.channel_key(display)
        self.lines.joined[key] = display
        self.out.send(p.message("JOIN", display, prefix=user_prefix(self.me)))
        info = self.api.topic(display)
        if info is not None and info.text:
            self.lines.topics[key] = info.text
            self.out.numeric("332", display, info.text.replace("\n", " "))
        self._names(display)

    def part(self, m: p.Message) -> None:
        if not m.params:
            return self.out.numeric("461", "PART", "Not enough parameters")
        reason = m.param(1)
        for raw in m.params[0].split(","):
            key = _key_or_none(raw)
            if key is None or key not in self.lines.joined:
                self.out.numeric("442", raw, "You're not on that channel")
                continue
            display = self.lines.joined.pop(key)
            self.lines.topics.pop(key, None)
            try:
                self.api.part(display, reason)
            except USER_ERRORS as exc:
                self.out.notice(_words(exc))
            params = (display, reason) if reason else (display,)
            self.out.send(p.message("PART", *params, prefix=user_prefix(self.me)))

    def topic(self, m: p.Message) -> None:
        if not m.params:
            return self.out.numeric("461", "TOPIC", "Not enough parameters")
        key = _key_or_none(m.params[0])
        if key is None or key not in self.lines.joined:
            return self.out.numeric("442", m.params[0], "You're not on that channel")
        display = self.lines.joined[key]
        if len(m.params) > 1:
            try:
                self.api.set_topic(display, m.params[1])
            except USER_ERRORS as exc:
                return self.out.numeric("482", display, _words(exc))
            self.lines.topics[key] = m.params[1]
            self.out.send(p.message("TOPIC", display, m.params[1], prefix=user_prefix(self.me)))
            return None
        info = self.api.topic(display)
        if info is None or not info.text:
            return self.out.numeric("331", display, "No topic is set")
        self.out.numeric("332", display, info.text.replace("\n", " "))  # no 333: no time known
        return None

    def names(self, m: p.Message) -> None:
        if not m.params:
            for display in self.lines.joined.values():
                self._names(display)
            return None
        for raw in m.params[0].split(","):
            if _key_or_none(raw) in self.lines.joined:
                self._names(self.lines.joined[names.channel_key(raw)])
            else:
                self.out.numeric("366", raw, "End of /NAMES list")
        return None

    def _names(self, display: str) -> None:
        _, members = self.api.names(display)
        head = p.message("353", self.me, "=", display, "", prefix=SERVER)
        room = p.line_room(head)
        line: list[str] = []
        for nick in members:
            if line and len(" ".join([*line, nick]).encode()) > room:
                self.out.numeric("353", "=", display, " ".join(line))
                line = []
            line.append(nick)
        if line:
            self.out.numeric("353", "=", display, " ".join(line))
        self.out.numeric("366", display, "End of /NAMES list")

    def list(self, m: p.Message) -> None:
        self.out.numeric("321", "Channel", "Users  Name")
        for info in self.api.list_channels():
            self.out.numeric("322", info.name, str(info.members), info.topic.replace("\n", " "))
        self.out.numeric("323", "End of /LIST")

    # --- people ------------------------------------------------------------------------------
    def who(self, m: p.Message) -> None:
        mask = m.param(0, "*")
        key = _key_or_none(mask)
        if key is not None and key in self.lines.joined:
            channel = self.lines.joined[key]
            people = self.api.names(channel)[1]
        else:
            channel = "*"
            online = self.api.who()
            people = online if mask in ("*", "0") else [n for n in online if same_nick(n, mask)]
        for nick in people:
            here = "G" if self.lines.is_away(nick) else "H"
            self.out.numeric("352", channel, _user_of(nick), HOST, SERVER, nick, here,
                             f"0 {REALNAME}")
        self.out.numeric("315", mask, "End of /WHO list")

    def whois(self, m: p.Message) -> None:
        if not m.params:
            return self.out.numeric("431", "No nickname given")
        nick = m.params[-1]
        try:
            info = self.api.whois(nickname.display_form(nick))
        except USER_ERRORS:
            info = None
        if info is None:
            self.out.numeric("401", nick, "No such nick/channel")
            return self.out.numeric("318", nick, "End of /WHOIS list")
        n = info.nickname
        self.out.numeric("311", n, _user_of(n), HOST, "*", REALNAME)
        if info.channels:
            self.out.numeric("319", n, " ".join(info.channels))
        self.out.numeric("312", n, SERVER, "OpenLChat: peer to peer, end-to-end encrypted")
        if info.away:
            self.out.numeric("301", n, info.away)
        if info.fingerprint:
            self.out.numeric("276", n, f"has identity key fingerprint {info.fingerprint}")
        state = "verified" if info.verified else f"NOT verified (compare it, then /quote " \
                                                 f"VERIFY {n})"
        if info.key_changed:
            state = "CHANGED since last time: someone may be impersonating " + n
        if info.fingerprint:
            self.out.numeric("320", n, f"identity key {state}")
        else:
            self.out.numeric("320", n, "identity key unknown (no session yet)")
        return self.out.numeric("318", n, "End of /WHOIS list")

    def away(self, m: p.Message) -> None:
        text = m.param(0)
        try:
            self.api.away(text or None)
        except USER_ERRORS as exc:
            return self.out.notice(_words(exc))
        if text:
            return self.out.numeric("306", "You have been marked as being away")
        return self.out.numeric("305", "You are no longer marked as being away")

    def nick(self, m: p.Message) -> None:
        if not m.params or not m.params[0]:
            return self.out.numeric("431", "No nickname given")
        raw = m.params[0]
        try:
            new = nickname.display_form(raw)
        except ProtocolError as exc:
            return self.out.numeric("432", raw, exc.text)
        if new == self.me:
            return None
        try:
            self.api.rename(new)
        except USER_ERRORS as exc:
            return self.out.numeric("433", new, _words(exc))
        old, self.out.nick = self.me, new
        self.out.send(p.message("NICK", new, prefix=user_prefix(old)))
        return None

    def ison(self, m: p.Message) -> None:
        online = self.api.who()
        asked = " ".join(m.params).split()
        self.out.numeric("303", " ".join(n for n in online
                                         if any(same_nick(n, a) for a in asked)))

    def userhost(self, m: p.Message) -> None:
        online = self.api.who()
        found = [n for n in online if any(same_nick(n, a) for a in m.params[:5])]
        self.out.numeric("302", " ".join(f"{n}=+{_user_of(n)}@{HOST}" for n in found))

    def mode(self, m: p.Message) -> None:
        """Answered so that clients do not wait; OpenLChat has no modes to change."""
        if not m.params:
            return self.out.numeric("461", "MODE", "Not enough parameters")
        target = m.params[0]
        if not target.startswith(names.PREFIX):
            if not same_nick(target, self.me):
                return self.out.numeric("502", "Can't change mode for other users")
            return self.out.numeric("221", "+i")
        key = _key_or_none(target)
        if key is None or key not in self.lines.joined:
            return self.out.numeric("403", target, "No such channel")
        if len(m.params) == 1:
            return self.out.numeric("324", self.lines.joined[key], "+n")
        if m.params[1].lstrip("+") in ("b", "e", "I"):
            return self.out.numeric("368", target, "End of channel ban list")
        return self.out.numeric("482", target, "OpenLChat channels have no modes")

    # --- OpenLChat's own commands ------------------------------------------------------------
    def openlchat_command(self, line: str) -> None:
        """A line of the OpenLChat command table; its replies come as ``*openlchat*`` notices."""
        word = line[1:].split(" ", 1)[0].lower()
        if word in _IRC_ONLY and word != "help":
            self.out.notice(f"use your IRC client's /{word}")
            return
        reply = chat_commands.run_line(line, self.api)
        for text in reply.notices:
            self.out.notice(text)
        for stored in reply.history:
            shown = format_history(stored, self.me)
            if shown:
                self.out.notice(shown)

    def is_openlchat_command(self, command: str) -> bool:
        word = command.lower()
        return word in chat_commands.BY_NAME and word not in _IRC_ONLY


def _words(exc: Exception) -> str:
    if isinstance(exc, ProtocolError):
        return exc.text
    return str(exc) or type(exc).__name__


def _key_or_none(raw: str) -> str | None:
    try:
        return names.channel_key(raw)
    except ProtocolError:
        return None


def _user_of(nick: str) -> str:
    return user_prefix(nick).split("!", 1)[1].split("@", 1)[0]
