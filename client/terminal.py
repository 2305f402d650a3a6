"""The terminal face: ``python -m client --headless --server HOST[:PORT] --nick NICK``.

Input (one line each):
  ``text``             a room message          ``/msg NICK text``   a private message
  ``/who``             who is online           ``/whois NICK``      fingerprint, verified?
  ``/verify NICK``     remember NICK's key as checked                ``/quit`` or end of input
  ``/send NICK PATH``  offer a file     ``/accept ID``, ``/decline ID``, ``/cancel ID``  (files)
  A typed line may carry line breaks as ``\\n`` (and a backslash as ``\\\\``); a line starting
  with ``//`` sends the rest starting with one ``/``.

Output, one line per event, flushed at once (scripts and tests depend on these forms)::

  <alice> hello                      -!- bob joined / -!- bob left
  *alice* hello                      -!- not delivered to bob: hello
  -!- online (3): alice, bob, carol  -!- WARNING: ...
  -!- server unreachable, peers still reachable          -!- server back

A received message with line breaks prints its first line after the prefix and every further
line indented by two spaces (event lines never start with a space, so a continuation line is
always recognisable).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from client import events as ev
from client.config import format_address
from client.engine import Engine, MessageTooLarge, UnknownPeer
from client.wording import human_size

log = logging.getLogger(__name__)

INDENT = "  "
LEAVE_GRACE = 2.0  # seconds to let the last messages be acknowledged before QUIT
WHOIS_WAIT = 1.5  # seconds /whois waits for a handshake to bring a peer's key
# (command, what it does): /help, ``--help`` and the README list the same
COMMANDS: tuple[tuple[str, str], ...] = (
    ("text", "say something to the room"),
    ("/msg NICK text", "a private message to NICK"),
    ("/who", "who is online"),
    ("/whois NICK", "NICK's key fingerprint, to compare aloud; verified or not; the path"),
    ("/verify NICK", "remember NICK's key as checked"),
    ("/netcheck", "how reachable we are: public address, NAT, LAN peers and servers"),
    ("/send NICK PATH", "offer a file to NICK"),
    ("/accept ID, /decline ID", "answer file offer #ID"),
    ("/cancel ID", "stop file transfer #ID"),
    ("/help", "this list"),
    ("/quit", "leave (so does the end of input, Ctrl+D; Ctrl+Z Enter on Windows)"),
)
HELP = ("commands: /msg NICK text, /who, /whois NICK, /verify NICK, /netcheck, /send NICK PATH, "
        "/accept ID, /decline ID, /cancel ID, /quit; type \\n for a line break")


def command_list() -> str:
    """The commands, one a line (``python -m client --help`` shows it)."""
    width = max(len(c) for c, _ in COMMANDS) + 2
    lines = [f"  {c:<{width}}{what}" for c, what in COMMANDS]
    return "\n".join([*lines, "  A line may carry line breaks as \\n; start it with // to "
                       "send a leading /."])


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


def render_text(prefix: str, text: str) -> str:
    lines = text.split("\n")
    return "\n".join([prefix + lines[0], *(INDENT + rest for rest in lines[1:])])


def format_event(event: object) -> str | None:
    """The output line(s) for one engine event, or None for events the terminal skips."""
    if isinstance(event, ev.RoomMessage):
        out = render_text(f"<{event.sender}> ", event.text)
        return _warn(event.sender, event.warning) + out
    if isinstance(event, ev.PrivateMessage):
        out = render_text(f"*{event.sender}* ", event.text)
        return _warn(event.sender, event.warning) + out
    if isinstance(event, ev.Joined):
        return f"-!- {event.nickname} joined"
    if isinstance(event, ev.Left):
        return f"-!- {event.nickname} left"
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
        # the commands that answer a file offer, each the engine method it calls
        self._answers: dict[str, Callable[[int], None]] = {
            "/accept": engine.accept_file, "/decline": engine.decline_file,
            "/cancel": engine.cancel_file}
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
        """One input line; False means quit."""
        if not line.strip():
            return True
        if line.startswith("//"):
            return self._say(line[1:])
        if not line.startswith("/"):
            return self._say(line)
        command, _, rest = line.partition(" ")
        command = command.lower()
        if command == "/quit":
            return False
        if command == "/msg":
            nick, _, text = rest.strip(" ").partition(" ")
            if not nick or not text:
                self.write("-!- usage: /msg NICK text")
                return True
            self._guard(lambda: self.engine.send_private(nick, unescape(text)))
        elif command == "/who":
            names = sorted([self.engine.nickname, *self.engine.roster()], key=str.casefold)
            self.write(f"-!- online ({len(names)}): {', '.join(names)}")
        elif command == "/whois":
            self._whois(rest.strip())
        elif command == "/verify":
            self._verify(rest.strip())
        elif command == "/netcheck":
            try:
                for text in self.engine.netcheck():
                    self.write(f"-!- {text}")
            except RuntimeError as exc:
                self.write(f"-!- netcheck failed: {exc}")
        elif command == "/send":
            nick, _, path = rest.strip(" ").partition(" ")
            if not nick or not path:
                self.write("-!- usage: /send NICK PATH")
            else:
                self._files(lambda: self._offer(nick, path))
        elif command in self._answers:
            tid = rest.strip()
            if not tid.isdigit():
                self.write(f"-!- usage: {command} ID")
            else:
                answer = self._answers[command]
                if int(tid) not in self._live:
                    self.write(f"-!- no transfer {int(tid)}")
                else:
                    self._files(lambda: answer(int(tid)))
        elif command == "/help":
            self.write("-!- commands:\n" + command_list())
        else:
            self.write(f"-!- unknown command {command}; {HELP}")
        return True

    def _say(self, text: str) -> bool:
        self._guard(lambda: self.engine.send_room(unescape(text)))
        return True

    def _guard(self, send) -> None:  # type: ignore[no-untyped-def]
        try:
            send()
        except MessageTooLarge as exc:
            self.write(f"-!- message too long, not sent: {exc}")
        except UnknownPeer as exc:
            self.write(f"-!- no such nick: {exc}")
        except RuntimeError as exc:
            self.write(f"-!- not sent: {exc}")

    def _offer(self, nick: str, path: str) -> None:
        peer = self.engine.resolve(nick)
        if peer is None:
            self.write(f"-!- no such nick: {nick}")
            return
        ids = self.engine.offer_files(peer, [Path(path).expanduser()])
        self._live.update(ids)
        self.write(f"-!- offered {path} to {peer} as #{', #'.join(map(str, ids))}")

    def _files(self, action) -> None:  # type: ignore[no-untyped-def]
        try:
            action()
        except (OSError, ValueError) as exc:
            self.write(f"-!- file: {exc}")
        except RuntimeError as exc:
            self.write(f"-!- {exc}")

    def _whois(self, nick: str) -> None:
        if not nick:
            self.write("-!- usage: /whois NICK")
            return
        try:  # with no session yet, a handshake fetches the key (no message needed)
            info = self.engine.whois_fetched(nick, WHOIS_WAIT)
        except RuntimeError as exc:
            self.write(f"-!- whois failed: {exc}")
            return
        if info is None:
            self.write(f"-!- no such nick: {nick}")
            return
        fp = info.fingerprint or "unknown (no session yet)"
        state = "verified" if info.verified else "not verified"
        if info.key_changed:
            state += ", KEY CHANGED"
        where = f" at {format_address(info.address)}" if info.address else ""
        self.write(f"-!- {info.nickname}{where}: fingerprint {fp} ({state})")
        if info.path is not None:
            self.write(f"-!- {info.nickname} path: {info.path}")

    def _verify(self, nick: str) -> None:
        if not nick:
            self.write("-!- usage: /verify NICK")
            return
        try:
            peer = self.engine.resolve(nick)
            ok = peer is not None and self.engine.mark_verified(peer)
        except RuntimeError as exc:
            self.write(f"-!- verify failed: {exc}")
            return
        if peer is None:
            self.write(f"-!- no such nickname online: {nick}")
        elif ok:
            self.write(f"-!- {peer}'s key is now marked as verified")
        else:
            self.write(f"-!- no key known for {peer} yet; compare fingerprints with "
                       f"/whois {peer} first")

    def _print_events(self) -> None:
        import queue

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
