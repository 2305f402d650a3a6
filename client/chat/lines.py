"""Terminal lines for chat events: one pure function per event (a stable contract, issue 11).

| event                         | line                                                      |
|-------------------------------|-----------------------------------------------------------|
| message in ``#room``          | ``<alice> text``                                          |
| message in another channel    | ``[#games] <alice> text``                                 |
| action                        | ``* alice waves`` · ``[#games] * alice waves`` ·          |
|                               | private: ``* alice waves (private)``                      |
| join / part of a channel      | ``-!- alice joined #games`` · ``-!- alice left #games``   |
| topic                         | ``-!- #games topic: text (set by alice)``                 |
| away                          | ``-!- alice is away: lunch`` · ``-!- alice is back``      |
| nick change                   | ``-!- alice is now known as alicia``                      |
| from history or backfill      | the same line with ``(history) `` in front                |
| waiting / delivered later     | ``-!- waiting for bob: text`` · ``-!- delivered to bob: text`` |
| private message (as today)    | ``*alice* text``; ours, from history: ``-> *bob* text``   |
| not delivered (as today)      | ``-!- not delivered to bob: text``                        |

A text with line breaks prints its first line after the prefix and every further line indented
by two spaces (as the terminal does today). Events about channels we are not in, memberships
learned when meeting a peer, and peers quitting (the roster's ``-!- bob left`` says it) give
no line (None).
"""

from __future__ import annotations

from client.chat import events as ev
from client.chat import names, wire
from client.chat.channels import line_event

INDENT = "  "
HISTORY = "(history) "


def render_text(prefix: str, text: str) -> str:
    lines = text.split("\n")
    return "\n".join([prefix + lines[0], *(INDENT + rest for rest in lines[1:])])


def _in(channel: str) -> str:
    """The ``[#games] `` prefix; nothing for ``#room``."""
    return "" if names.same_channel(channel, names.ROOM) else f"[{channel}] "


def _hist(history: bool) -> str:
    return HISTORY if history else ""


def _warn(e: ev.ChannelMessage | ev.PrivateLine | ev.Action) -> str:
    """A line of its own before a message whose sender's key changed (as today)."""
    return f"-!- WARNING: {e.warning} ({e.sender})\n" if e.warning else ""


def channel_message(e: ev.ChannelMessage) -> str:
    return _warn(e) + render_text(f"{_hist(e.history)}{_in(e.channel)}<{e.sender}> ", e.text)


def private_line(e: ev.PrivateLine) -> str:
    return _warn(e) + render_text(f"{_hist(e.history)}*{e.sender}* ", e.text)


def action(e: ev.Action) -> str:
    if e.channel is None:
        return _warn(e) + render_text(f"{_hist(e.history)}* {e.sender} ", e.text) + " (private)"
    return _warn(e) + render_text(f"{_hist(e.history)}{_in(e.channel)}* {e.sender} ", e.text)


def joined(e: ev.ChannelJoined) -> str | None:
    return f"-!- {e.nick} joined {e.channel}" if e.mine and e.fresh else None


def parted(e: ev.ChannelParted) -> str | None:
    if not e.mine or e.quit:
        return None
    return f"-!- {e.nick} left {e.channel}" + (f" ({e.reason})" if e.reason else "")


def topic(e: ev.TopicChanged) -> str | None:
    if not e.mine:
        return None
    return f"{_hist(e.history)}-!- {e.channel} topic: {e.text} (set by {e.setter})"


def away(e: ev.AwayChanged) -> str | None:
    if not e.fresh:
        return None
    return f"-!- {e.nick} is back" if e.text is None else f"-!- {e.nick} is away: {e.text}"


def renamed(e: ev.Renamed) -> str:
    return f"-!- {e.old} is now known as {e.new}"


def away_reply(e: ev.AwayReply) -> str:
    return f"-!- {e.nick} is away: {e.text}"


def waiting(e: ev.Waiting) -> str:
    return render_text(f"-!- waiting for {e.nick}: ", e.text)


def delivered_later(e: ev.DeliveredLater) -> str:
    return render_text(f"-!- delivered to {e.nick}: ", e.text)


def failed(e: ev.Failed) -> str:
    return render_text(f"-!- not delivered to {e.nick}: ", e.text)


_FORMATS = {
    ev.ChannelMessage: channel_message, ev.PrivateLine: private_line, ev.Action: action,
    ev.ChannelJoined: joined, ev.ChannelParted: parted, ev.TopicChanged: topic,
    ev.AwayChanged: away, ev.Renamed: renamed, ev.AwayReply: away_reply, ev.Waiting: waiting,
    ev.DeliveredLater: delivered_later, ev.Failed: failed,
}


def format_chat_event(event: ev.ChatEvent) -> str | None:
    """The terminal line(s) for a chat event, or None when the terminal shows nothing."""
    return _FORMATS[type(event)](event)  # type: ignore[operator]


def format_history(line: wire.SignedLine, me: str) -> str | None:
    """A stored line as ``(history) ...``; our own private lines as ``-> *bob* text``."""
    if not line.is_channel and nick_is(line.author, me):
        if line.kind == wire.Kind.ACTION:
            return render_text(f"{HISTORY}-> {line.target}: * {line.author} ", line.text)
        return render_text(f"{HISTORY}-> *{line.target}* ", line.text)
    return format_chat_event(line_event(line, me, history=True))


def format_notice(text: str) -> str:
    """A command's reply notice (``commands.Reply.notices``) as a terminal line."""
    return render_text("-!- ", text)


def nick_is(a: str, b: str) -> bool:
    return names.peer_key(a) == names.peer_key(b)
