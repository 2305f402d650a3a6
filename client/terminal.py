"""The terminal face: ``python -m client --headless --server HOST[:PORT] --nick NICK``.

Input, one line each: plain text goes to the current channel (``#room`` at start); every slash
command comes from the one command table (``client.chat.commands``; ``/help`` lists them).
A typed text may carry line breaks as ``\\n`` (and a backslash as ``\\\\``); a line starting
with ``//`` sends the rest starting with one ``/``. End of input is ``/quit``.

Output, one line per event, flushed at once (scripts and tests depend on these forms); chat
lines are ``client.chat.lines`` (the table of issue 11), the others are::

  <alice> hello                      -!- bob joined / -!- bob left
  *alice* hello                      -!- not delivered to bob: hello
  -!- online (3): alice, bob, carol  -!- WARNING: ...
  -!- server unreachable, peers still reachable          -!- server back

A received message with line breaks prints its first line after the prefix and every further
line indented by two spaces (event lines never start with a space, so a continuation line is
always recognisable).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from typing import TextIO

from client import events as ev
from client.chat import commands, lines
from client.chat import events as cev
from client.chat.lines import render_text
from client.engine import Engine
from client.wording import human_size

log = logging.getLogger(__name__)

LEAVE_GRACE = 2.0  # seconds to let the last messages be acknowledged before QUIT
ESCAPED = ("say", "msg", "me")  # commands whose text takes the \\n escape
TRANSFER_COMMANDS = ("accept", "decline", "cancel")
# (command, what it does), from the one command table: /help, ``--help`` and the README
COMMANDS: tuple[tuple[str, str], ...] = tuple(commands.command_rows())


def command_list() -> str:
    """The commands, one a line (``python -m client --help`` and ``/help`` show it)."""
    width = max(len(c) for c, _ in COMMANDS) + 2
    rows = [f"  {c:<{width}}{what}" for c, what in COMMANDS]
    return "\n".join([*rows, "  A line may carry line breaks as \\n; start it with // to "
                      "send a leading /. /quit or the end of input (Ctrl+D; Ctrl+Z Enter on "
                      "Windows) leaves."])


def unescape(line: str) -> str:
    """``\\n`` -> line break, ``\\\\`` -> backslash; any other backslash stays as typed."""
    out: list[str] = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "n\\":
            out.append("\n" if line[i + 1] == "n" else "\\")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def format_event(event: object) -> str | None:
    """The output line(s) for one engine event, or None for events the terminal skips."""
    if isinstance(event, cev.ChatEvent):
        return lines.format_chat_event(event)
    if isinstance(event, ev.RoomMessage):
        out = render_text(f"<{event.sender}> ", event.text)
        return _warn(event.sender, event.warning) + out
    if isinstance(event, ev.PrivateMessage):
        out = render_text(f"*{event.sender}* ", event.text)
        return _warn(event.sender, event.warning) + out
    if isinstance(event, ev.Joined | ev.Left):  # half of a rename: "is now known as" says it
        what = "joined" if isinstance(event, ev.Joined) else "left"
        return None if event.rename else f"-!- {event.nickname} {what}"
    if isinstance(event, ev.NotDelivered):
        return render_text(f"-!- not delivered to {event.nickname}: ", event.text)
    if isinstance(event, ev.ServerLost):
        return "-!- server unreachable, peers still reachable"
    if isinstance(event, ev.ServerBack):
        return "-!- server back"
    if isinstance(event, ev.Reregistered):
        return None  # the server forgot us and we are back: nothing the user must do
    if isinstance(event, ev.KeyChanged):
        return (f"-!- WARNING: {event.nickname}'s identity key changed "
                f"(was {event.old_fingerprint}, now {event.new_fingerprint}); "
                f"someone may be impersonating {event.nickname}")
    if isinstance(event, ev.PeerUnreachable):
        return f"-!- cannot talk to {event.nickname}: {event.reason}"
    if isinstance(event, ev.Fatal):
        return f"-!- error: {event.text}"
    if isinstance(event, ev.FileOffered):
        return (f"-!- {event.sender} offers file #{event.transfer_id}: {event.name} "
                f"({human_size(event.size)}); /accept {event.transfer_id} or "
                f"/decline {event.transfer_id}")
    if isinstance(event, ev.FileProgress):
        return format_progress(event)
    if isinstance(event, ev.FileDone):
        if event.outgoing:
            return f"-!- file #{event.transfer_id} {event.name} sent to {event.peer}"
        return f"-!- file #{event.transfer_id} {event.name} from {event.peer} saved as {event.path}"
    if isinstance(event, ev.FileFailed):
        return f"-!- file #{event.transfer_id} {event.name} ({event.peer}) failed: {event.reason}"
    if isinstance(event, ev.Notice):
        return f"-!- {event.text}"
    if isinstance(event, ev.Registered):
        names = ", ".join(event.roster)
        return f"-!- registered as {event.nickname}; online: {names or 'nobody else'}"
    return None


def format_progress(p: ev.FileProgress) -> str:
    pct = 100.0 * p.done / p.total if p.total else 100.0
    rate = ""
    if p.bytes_per_s > 0 and p.total > p.done:   # no "100%, 0 B/s" at the end
        secs = int((p.total - p.done) / p.bytes_per_s)
        rate = f", {human_size(p.bytes_per_s)}/s, {secs // 60}:{secs % 60:02d} left"
    arrow = "to" if p.outgoing else "from"
    return (f"-!- file #{p.transfer_id} {p.name} {arrow} {p.peer}: {pct:.0f}% of "
            f"{human_size(p.total)}{rate}")


def _warn(sender: str, warning: str | None) -> str:
    return f"-!- WARNING: {warning} ({sender})\n" if warning else ""


class Terminal:
    """Reads commands from ``stdin``, prints engine events to ``stdout``."""

    def __init__(self, engine: Engine, stdin: TextIO, stdout: TextIO) -> None:
        self.engine = engine
        self.stdin = stdin
        self.stdout = stdout
        self._out_lock = threading.Lock()
        self._stop = threading.Event()
        # transfer ids this terminal has heard of and that are not over (printer thread adds,
        # removes): "/accept 99" for an id never seen says so instead of nothing
        self._live: set[int] = set()
        self._printer = threading.Thread(target=self._print_events, name="terminal-out",
                                         daemon=True)

    def write(self, text: str) -> None:
        with self._out_lock:
            try:
                self.stdout.write(text + "\n")
                self.stdout.flush()
            except (OSError, ValueError):
                pass  # stdout gone (closed pipe): nothing left to tell

    def run(self) -> int:
        self._printer.start()
        try:
            for raw in self.stdin:
                line = raw.rstrip("\r\n")
                if not self.handle(line):
                    break
            self.engine.wait_idle(LEAVE_GRACE)
        except KeyboardInterrupt:
            pass
        finally:
            self.engine.close()
            self._stop.set()
            self._printer.join(2.0)
        return 0

    def handle(self, line: str) -> bool:
        """One input line, through the command table; False means quit."""
        parsed = commands.parse(line)
        if parsed is None:
            return True
        if isinstance(parsed, commands.UsageError):
            self.write(lines.format_notice(parsed.text))
            return True
        name = parsed.spec.name
        if name == "help" and not parsed.args.text.strip():
            self.write("-!- commands:\n" + command_list())
            return True
        if name in TRANSFER_COMMANDS and parsed.args.number not in self._live:
            self.write(f"-!- no transfer {parsed.args.number}")  # not one we heard of
            return True
        if name in ESCAPED:
            parsed = dataclasses.replace(
                parsed, args=dataclasses.replace(parsed.args, text=unescape(parsed.args.text)))
        reply = commands.execute(parsed, self.engine.chat)
        self._live.update(reply.transfers)
        for notice in reply.notices:
            self.write(lines.format_notice(notice))
        for stored in reply.history:
            text = lines.format_history(stored, self.engine.nickname)
            if text is not None:
                self.write(text)
        return not reply.quit

    def _print_events(self) -> None:
        while True:
            try:
                event = self.engine.events.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if isinstance(event, ev.FileOffered | ev.FileProgress):
                self._live.add(event.transfer_id)
            elif isinstance(event, ev.FileDone | ev.FileFailed):
                self._live.discard(event.transfer_id)
            text = format_event(event)
            if text is not None:
                self.write(text)
