"""The one slash-command table: name, arguments, help line, and the ``ChatApi`` call it makes.

Every face (terminal, GUI input line, ``/help``, the IRC gateway) parses with ``parse`` and runs
with ``execute``; adding a command is one ``CommandSpec`` in ``TABLE``. ``parse`` returns a
``Command`` (arguments checked and typed) or a ``UsageError`` in plain words; ``execute`` makes
the engine call and returns a ``Reply``: notice lines in plain words (the terminal prints each
after ``-!- ``), history lines to show, or ``quit``. Our user's mistakes reported by the engine
(``ClientError``) become a notice, never an exception.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.chat import names
from client.chat.api import ChatApi, PersonInfo
from client.chat.wire import SignedLine
from client.config import format_address
from client.errors import ClientError
from models import nickname
from models.errors import ProtocolError

HISTORY_DEFAULT = 50
HISTORY_MAX = 5000
EVERYTHING = "*"  # /forget-history * : every conversation


class Kind(enum.Enum):
    CHANNEL = "channel"  # "#name"
    NICK = "nick"
    TARGET = "target"  # a channel or a nickname
    TEXT = "text"  # the rest of the line
    NUMBER = "number"  # a positive integer
    PATH = "path"  # the rest of the line, as a file path


@dataclass(frozen=True)
class Param:
    name: str  # as shown in usage lines
    kind: Kind
    optional: bool = False


@dataclass(frozen=True)
class Args:
    """The parsed arguments; ``here`` is the face's current conversation (None: the current
    channel), used by commands whose target is optional."""

    channel: str | None = None
    nick: str | None = None
    target: str | None = None
    text: str = ""
    number: int | None = None
    path: Path | None = None
    here: str | None = None


@dataclass(frozen=True)
class Reply:
    notices: tuple[str, ...] = ()
    history: tuple[SignedLine, ...] = ()
    quit: bool = False
    transfers: tuple[int, ...] = ()  # file transfers this command started (``/send``)


@dataclass(frozen=True)
class CommandSpec:
    name: str
    params: tuple[Param, ...]
    help: str
    call: Callable[[ChatApi, Args], Reply]
    hidden: bool = False

    @property
    def usage(self) -> str:
        parts = [f"/{self.name}"]
        for p in self.params:
            parts.append(f"[{p.name}]" if p.optional else p.name)
        return " ".join(parts)


@dataclass(frozen=True)
class Command:
    spec: CommandSpec
    args: Args


@dataclass(frozen=True)
class UsageError:
    text: str


# --- the engine calls ------------------------------------------------------------------------

def _done(*notices: str) -> Reply:
    return Reply(tuple(n for n in notices if n))


def _who(api: ChatApi, a: Args) -> Reply:
    people = sorted(api.who(), key=str.casefold)
    return _done(f"online ({len(people)}): {', '.join(people)}")


def _whois(api: ChatApi, a: Args) -> Reply:
    assert a.nick is not None
    info = api.whois(a.nick)
    if info is None:
        return _done(f"no such nick: {a.nick}")
    # the path on a line of its own: the person's line stays as scripts read it
    return _done(describe_person(info), info.path and f"{info.nickname} path: {info.path}")


def describe_person(info: PersonInfo) -> str:
    fp = info.fingerprint or "unknown (no session yet)"
    state = "verified" if info.verified else "not verified"
    if info.key_changed:
        state += ", KEY CHANGED"
    where = f" at {format_address(info.address)}" if info.address else ""
    extra = f"; away: {info.away}" if info.away else ""
    common = [c for c in info.channels if not names.same_channel(c, names.ROOM)]
    if common:  # everyone is in #room: naming it says nothing
        extra += f"; channels in common: {', '.join(common)}"
    return f"{info.nickname}{where}: fingerprint {fp} ({state}){extra}"


def _verify(api: ChatApi, a: Args) -> Reply:
    assert a.nick is not None
    if api.verify(a.nick):
        return _done(f"{a.nick}'s key is now marked as verified")
    return _done(f"no key known for {a.nick} yet; compare fingerprints with /whois {a.nick} "
                 "first")


def _send(api: ChatApi, a: Args) -> Reply:
    assert a.nick is not None and a.path is not None
    ids = api.offer_file(a.nick, a.path.expanduser())
    key = names.peer_key(a.nick)  # the nickname as its owner spells it
    shown = next((p for p in api.who() if names.peer_key(p) == key), a.nick)
    return Reply((f"offered {a.path} to {shown} as #{', #'.join(map(str, ids))}",),
                 transfers=tuple(ids))


def _join(api: ChatApi, a: Args) -> Reply:
    assert a.channel is not None
    api.join(a.channel)
    return _done()


def _part(api: ChatApi, a: Args) -> Reply:
    api.part(a.channel, a.text)
    return _done()


def _topic(api: ChatApi, a: Args) -> Reply:
    if a.text:
        api.set_topic(a.channel, a.text)
        return _done()
    info = api.topic(a.channel)
    if info is None or not info.text:
        return _done(f"{a.channel or 'this channel'} has no topic")
    return _done(f"{info.channel} topic: {info.text} (set by {info.setter})")


def _list(api: ChatApi, a: Args) -> Reply:
    chans = api.list_channels()
    if not chans:
        return _done("no channels")
    return _done(*(f"{c.name} ({c.members}){' *' if c.joined else ''}"
                   f"{': ' + c.topic if c.topic else ''}" for c in chans))


def _names(api: ChatApi, a: Args) -> Reply:
    channel, members = api.names(a.channel)
    return _done(f"{channel} ({len(members)}): {', '.join(members)}")


def _history(api: ChatApi, a: Args) -> Reply:
    if a.target == EVERYTHING:
        return _done(f"usage: {BY_NAME['history'].usage}")
    lines = api.history(a.target or a.here, min(a.number or HISTORY_DEFAULT, HISTORY_MAX))
    return Reply(history=tuple(lines)) if lines else _done("no history")


def _search(api: ChatApi, a: Args) -> Reply:
    found = api.search(a.text)
    return Reply(history=tuple(reversed(found))) if found else _done(f"nothing found: {a.text}")


def _forget(api: ChatApi, a: Args) -> Reply:
    target = a.target or a.here
    gone = api.forget_history(target)
    what = "every conversation" if target == EVERYTHING else (target or "this channel")
    return _done(f"forgot {gone} line(s) of {what}")


def _nick(api: ChatApi, a: Args) -> Reply:
    assert a.nick is not None
    api.rename(a.nick)
    return _done()


def _netcheck(api: ChatApi, a: Args) -> Reply:
    return _done(*api.netcheck())


def _file(method: Callable[[ChatApi, int], None]) -> Callable[[ChatApi, Args], Reply]:
    def call(api: ChatApi, a: Args) -> Reply:
        assert a.number is not None
        method(api, a.number)
        return _done()
    return call


def _say(api: ChatApi, a: Args) -> Reply:
    if a.here is not None:
        api.message(a.here, a.text)
    else:
        api.say(a.text)
    return _done()


def _msg(api: ChatApi, a: Args) -> Reply:
    assert a.target is not None
    api.message(a.target, a.text)
    return _done()


def _me(api: ChatApi, a: Args) -> Reply:
    api.action(a.here, a.text)
    return _done()


def _away(api: ChatApi, a: Args) -> Reply:
    api.away(a.text or None)
    return _done()


def _help(api: ChatApi, a: Args) -> Reply:
    return Reply(tuple(help_lines(a.text.strip() or None)))


def _quit(api: ChatApi, a: Args) -> Reply:
    return Reply(quit=True)


# --- the table -------------------------------------------------------------------------------

_CH = Param("#channel", Kind.CHANNEL)
_CH_OPT = Param("#channel", Kind.CHANNEL, optional=True)
_NICK = Param("NICK", Kind.NICK)
_ID = Param("ID", Kind.NUMBER)
_TEXT = Param("text", Kind.TEXT)
_TARGET_OPT = Param("#channel|NICK", Kind.TARGET, optional=True)
_FORGET = Param("#channel|NICK|*", Kind.TARGET, optional=True)

TABLE: tuple[CommandSpec, ...] = (
    CommandSpec("msg", (Param("NICK|#channel", Kind.TARGET), _TEXT),
                "send text to someone (waits if they are offline) or to a channel you are in",
                _msg),
    CommandSpec("me", (_TEXT,), "an action: /me waves shows * you waves", _me),
    CommandSpec("join", (_CH,), "join a channel (created if nobody has it) and make it current",
                _join),
    CommandSpec("part", (_CH_OPT, Param("reason", Kind.TEXT, optional=True)),
                "leave a channel (the current one if none given)", _part),
    CommandSpec("topic", (_CH_OPT, Param("text", Kind.TEXT, optional=True)),
                "show a channel's topic, or set it", _topic),
    CommandSpec("list", (), "channels known to us, with member counts and topics", _list),
    CommandSpec("names", (_CH_OPT,), "who is in a channel", _names),
    CommandSpec("who", (), "who is online", _who),
    CommandSpec("whois", (_NICK,), "fingerprint, verified?, away text, channels in common",
                _whois),
    CommandSpec("verify", (_NICK,), "remember NICK's key as checked (compare fingerprints "
                "first)", _verify),
    CommandSpec("away", (Param("text", Kind.TEXT, optional=True),),
                "mark yourself away with a text; without text: back", _away),
    CommandSpec("nick", (Param("NEWNAME", Kind.NICK),), "change your nickname", _nick),
    CommandSpec("history", (_TARGET_OPT, Param("N", Kind.NUMBER, optional=True)),
                f"show the last N lines (default {HISTORY_DEFAULT}) of a conversation", _history),
    CommandSpec("search", (_TEXT,), "find past lines containing every word", _search),
    CommandSpec("forget-history", (_FORGET,),
                "delete the stored history of a conversation (the current one if none given; "
                "* for all)",
                _forget),
    CommandSpec("send", (_NICK, Param("PATH", Kind.PATH)), "offer a file", _send),
    CommandSpec("accept", (_ID,), "accept an offered file", _file(lambda api, i:
                                                                   api.accept_file(i))),
    CommandSpec("decline", (_ID,), "decline an offered file",
                _file(lambda api, i: api.decline_file(i))),
    CommandSpec("cancel", (_ID,), "stop a file transfer", _file(lambda api, i:
                                                              api.cancel_file(i))),
    CommandSpec("netcheck", (), "how reachable we are: public address, NAT, LAN peers",
                _netcheck),
    CommandSpec("help", (Param("COMMAND", Kind.TEXT, optional=True),), "this help", _help),
    CommandSpec("quit", (), "leave", _quit),
)
SAY = CommandSpec("say", (_TEXT,), "plain text: to the current conversation", _say, hidden=True)
BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in TABLE}


def command_rows() -> list[tuple[str, str]]:
    """(usage, what it does) for plain text and every command: ``--help``, the terminal's
    ``/help`` and the README list these."""
    return [("text", "say something in the current channel (#room at start)"),
            *((spec.usage, spec.help) for spec in TABLE)]


def help_lines(name: str | None = None) -> list[str]:
    if name is None:
        listed = ", ".join(f"/{s.name}" for s in TABLE)
        return [f"commands: {listed}; /help COMMAND for details; "
                "type \\n for a line break, // to start a line with /"]
    spec = BY_NAME.get(name.lstrip("/").lower())
    if spec is None:
        return [f"unknown command /{name.lstrip('/')}"]
    return [f"{spec.usage} -- {spec.help}"]


# --- parsing ---------------------------------------------------------------------------------

def parse(line: str, here: str | None = None) -> Command | UsageError | None:
    """One typed line. None for a blank line; plain text (or ``//...``) is the hidden ``say``
    command; ``here`` is the face's current conversation (a private tab's nickname, or None)."""
    if not line.strip():
        return None
    if line.startswith("//"):
        return Command(SAY, Args(text=line[1:], here=here))
    if not line.startswith("/"):
        return Command(SAY, Args(text=line, here=here))
    word, _, rest = line[1:].partition(" ")
    spec = BY_NAME.get(word.lower())
    if spec is None:
        return UsageError(f"unknown command /{word}; /help lists them")
    try:
        return Command(spec, _bind(spec, rest, here))
    except _Bad as exc:
        return UsageError(str(exc))


class _Bad(Exception):
    pass


def _bind(spec: CommandSpec, rest: str, here: str | None) -> Args:
    values: dict[str, object] = {"here": here}
    for i, param in enumerate(spec.params):
        rest = rest.lstrip(" ")
        if param.kind in (Kind.TEXT, Kind.PATH):  # the rest of the line, always last
            if rest:
                values[param.kind.value] = rest if param.kind is Kind.TEXT else Path(rest)
            elif not param.optional:
                raise _Bad(f"usage: {spec.usage}")
            return Args(**values)  # type: ignore[arg-type]
        token, _, after = rest.partition(" ")
        if not token or (param.optional
                         and not _looks_like(param.kind, token, spec.params[i + 1:])):
            if param.optional:
                continue
            raise _Bad(f"usage: {spec.usage}")
        if param.kind is Kind.NUMBER and not (token.isdigit() and 0 < int(token) < 1 << 31):
            raise _Bad(f"usage: {spec.usage}")
        values[param.kind.value] = _convert(param.kind, token)
        rest = after
    if rest.strip():
        raise _Bad(f"usage: {spec.usage}")
    return Args(**values)  # type: ignore[arg-type]


def _looks_like(kind: Kind, token: str, later: tuple[Param, ...]) -> bool:
    if kind is Kind.CHANNEL:
        return token.startswith(names.PREFIX)
    if kind is Kind.NUMBER:
        return token.isdigit()
    if kind is Kind.TARGET:  # "/history 20": a number for a later NUMBER is not a nickname
        return not (token.isdigit() and any(p.kind is Kind.NUMBER for p in later))
    return True


def _convert(kind: Kind, token: str) -> object:
    try:
        if kind is Kind.CHANNEL:
            return names.display_form(token)
        if kind is Kind.NICK:
            return nickname.display_form(token)
        if kind is Kind.TARGET:
            if token == EVERYTHING:
                return token
            if token.startswith(names.PREFIX):
                return names.display_form(token)
            return nickname.display_form(token)
    except ProtocolError as exc:
        raise _Bad(exc.text) from None
    return int(token)  # NUMBER, checked by _bind


def execute(command: Command, api: ChatApi) -> Reply:
    """Run a parsed command; our user's mistakes come back as a notice."""
    try:
        return command.spec.call(api, command.args)
    except ClientError as exc:
        return _done(str(exc) or type(exc).__name__)


def run_line(line: str, api: ChatApi, here: str | None = None) -> Reply:
    """``parse`` + ``execute`` for faces that need nothing in between."""
    parsed = parse(line, here)
    if parsed is None:
        return Reply()
    if isinstance(parsed, UsageError):
        return _done(parsed.text)
    return execute(parsed, api)
