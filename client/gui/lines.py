"""Chat lines in a message view: history (greyed, once each), the "new messages" marker, and
the state of each private message we sent (waiting / delivered / not delivered).

Works on a ``MessageView`` from the outside through Tk tags, so emoji (two Tk index positions)
never break a position: each own private line carries the view's ``m<id>`` tag and its state
text the tag ``st<id>``, replaced in place when the state changes.
"""

from __future__ import annotations

import itertools
import time
from collections import deque

from client.chat import names, wire
from client.gui.chat import MessageView
from client.gui.theme import Colours

MARKER = "──────── new messages ────────"
MAX_SHOWN_IDS = 20_000
MAX_PENDING = 200

WAITING, DELIVERED, FAILED = "waiting", "delivered", "failed"
_STATE_TEXT = {WAITING: "⏳ waiting", DELIVERED: "✓ delivered", FAILED: "✗ not delivered"}
_STATE_TAG = {WAITING: "st_wait", DELIVERED: "st_ok", FAILED: "undelivered"}

# a line naming us: a faint amber band (the theme's own colours mean "you" and "error")
_MENTION_BACKGROUND = {"light": "#fff4ce", "dark": "#3d3520"}

_local_ids = itertools.count(1 << 40)  # never an engine message id (those count from 1)


def style(view: MessageView, colours: Colours) -> None:
    """The tags this module uses, in ``colours`` (call again when the theme changes)."""
    text = view.text
    text.tag_configure("history", foreground=colours.muted)
    text.tag_lower("history")   # nick colours still win; the message text is greyed
    text.tag_configure("marker", foreground=colours.own, justify="center")
    text.tag_configure("day", foreground=colours.muted, justify="center")
    text.tag_configure("mention", background=_MENTION_BACKGROUND.get(colours.name, ""))
    text.tag_configure("st_wait", foreground=colours.muted)
    text.tag_configure("st_ok", foreground=colours.own)


class Lines:
    """What one conversation's view shows beyond plain lines (one per tab)."""

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self.shown: set[bytes] = set()          # message ids shown (history is shown once)
        self.by_id: dict[bytes, int] = {}       # our private line's id -> its view tag number
        self.states: dict[int, str] = {}        # view tag number -> state
        self.pending: deque[tuple[str, int]] = deque(maxlen=MAX_PENDING)  # (text, tag number)
        self.own: deque[tuple[str, int]] = deque(maxlen=MAX_PENDING)      # every line we sent
        self.marked = False
        self._day = time.strftime("%Y-%m-%d")   # history from another day gets a day line

    # --- lines -----------------------------------------------------------------------------
    def seen(self, msg_id: bytes) -> bool:
        """True if ``msg_id`` was shown already; else remember it."""
        if msg_id in self.shown:
            return True
        if len(self.shown) >= MAX_SHOWN_IDS:
            self.shown.clear()
        self.shown.add(msg_id)
        return False

    def add_line(self, line: wire.SignedLine, me: str, *, history: bool,
                 warning: str | None = None, mention: bool = False) -> bool:
        """Show a signed line (a message or an action); False if shown before. A live line
        shows when it arrived (the author's clock may be off); history when it was written."""
        if self.seen(line.msg_id):
            return False
        own = names.peer_key(line.author) == names.peer_key(me)
        number = next(_local_ids) if own else None
        if history:
            self._day_line(line.ts_ms / 1000)
        start = self._start()
        sender = f"* {line.author}" if line.kind == wire.Kind.ACTION else line.author
        self.view.add_message(sender, line.text, when=line.ts_ms / 1000 if history else None,
                              own=own, msg_id=number, warning=warning)
        if history:
            self._tag_since(start, "history")
        if mention:
            self._tag_since(start, "mention")
        if number is not None and not line.is_channel:
            self.by_id[line.msg_id] = number
        return True

    def add_own(self, text: str, me: str, *, action: bool = False, private: bool) -> int:
        """Our line, just sent (the engine gives no id yet: ``Waiting`` is matched by text)."""
        number = next(_local_ids)
        self.view.add_message(f"* {me}" if action else me, text, own=True, msg_id=number)
        self.own.append((text, number))
        if private:
            self.pending.append((text, number))
        return number

    def own_number(self, text: str) -> int | None:
        """The view's number of our latest line ``text`` (for "not delivered to X" marks)."""
        return next((n for t, n in reversed(self.own) if t == text), None)

    def add_marker(self) -> None:
        """The line between what was shown before (history) and what comes now."""
        if self.marked:
            return
        self.marked = True
        self._insert_centred(MARKER, "marker")
        self.view.text.see("end")
        self._day = time.strftime("%Y-%m-%d")

    def _day_line(self, when: float) -> None:
        day = time.strftime("%Y-%m-%d", time.localtime(when))
        if day == self._day:
            return
        self._day = day
        self._insert_centred(time.strftime("%A %d %B %Y", time.localtime(when)), "day")

    def _insert_centred(self, text: str, tag: str) -> None:
        box = self.view.text
        box.configure(state="normal")
        box.insert("end", text + "\n", (tag,))
        box.configure(state="disabled")

    def marker_line(self) -> int | None:
        """The view's line number of the marker (1-based), for tests."""
        found = self.view.text.tag_ranges("marker")
        return int(str(found[0]).split(".")[0]) if found else None

    # --- states of our private lines -------------------------------------------------------
    def set_state(self, msg_id: bytes, text: str, state: str) -> bool:
        """Show ``state`` against our private line ``msg_id`` (matched by ``text`` the first
        time); False if that line is not in this view."""
        number = self.by_id.get(msg_id)
        if number is None:
            number = self._claim(text)
            if number is None:
                return False
            self.by_id[msg_id] = number
        tag, st = f"m{number}", f"st{number}"
        box = self.view.text
        if not box.tag_ranges(tag):
            return False   # trimmed away
        box.configure(state="normal")
        if box.tag_ranges(st):
            box.delete(f"{st}.first", f"{st}.last")
        box.insert(f"{tag}.last", f"  {_STATE_TEXT[state]}", (_STATE_TAG[state], "own", tag, st))
        box.configure(state="disabled")
        self.states[number] = state
        return True

    def state_of(self, msg_id: bytes) -> str | None:
        number = self.by_id.get(msg_id)
        return None if number is None else self.states.get(number)

    def _claim(self, text: str) -> int | None:
        for i, (pending_text, number) in enumerate(self.pending):
            if pending_text == text:
                del self.pending[i]
                return number
        return None

    # --- tags over what was just added -----------------------------------------------------
    def _start(self) -> str:
        mark = f"start{id(self)}"
        self.view.text.mark_set(mark, "end-1c")
        self.view.text.mark_gravity(mark, "left")
        return mark

    def _tag_since(self, mark: str, tag: str) -> None:
        self.view.text.tag_add(tag, mark, "end-1c")
