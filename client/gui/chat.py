"""The chat widgets: message view, input line, one tab, the roster.

Text positions are never computed with Python ``len()``: Tk counts an emoji (outside the BMP)
as two index positions, so everything is inserted at ``"end"`` and found again through tags.
Each own message carries the tag ``m<msg_id>``; "not delivered to X" is inserted at that tag's
``.last`` index, right after the message it concerns.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import tkinter as tk
from collections.abc import Callable, Iterable
from tkinter import ttk

from client.gui.theme import NICK_PALETTE, Colours, font, nick_colour

log = logging.getLogger(__name__)

MAX_LINES = 4000       # message view keeps at most this many lines (memory stays bounded)
MAX_HISTORY = 100      # input lines remembered for Up/Down


def _nick_tag(nickname: str) -> str:
    # tag names must not contain spaces or odd characters: index the palette instead
    return f"nick{NICK_PALETTE.index(nick_colour(nickname))}"


# C0/C1 controls (but \t and \n), lone surrogates, and bidi overrides/isolates, which could
# reorder what is shown around them: peers choose this text, so it is defanged for display.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` as it may be shown: unsafe characters become U+FFFD."""
    return _UNSAFE.sub("\ufffd", text)


def _iid(nick: str) -> str:
    # roster row ids: "n:" + nickname, so no nickname can collide with the row "me"
    return "n:" + nick


def _nick(iid: str) -> str | None:
    return iid[2:] if iid.startswith("n:") else None


def _clock(when: float) -> str:
    return time.strftime("%H:%M", time.localtime(when))


class MessageView(ttk.Frame):
    """A read-only, scrolling, bounded log of chat lines."""

    def __init__(self, master: tk.Misc, colours: Colours) -> None:
        super().__init__(master)
        family = font(self, "TkTextFont")[0]
        # small requested size: the grid stretches it, and a small window still fits everything
        self.text = tk.Text(self, wrap="word", state="disabled", borderwidth=0, width=30, height=8,
                            highlightthickness=0, padx=10, pady=8, undo=False,
                            font=(family, 11), spacing1=2, spacing3=2, takefocus=0)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self._own_ids: dict[int, str] = {}
        self.text.tag_configure("body", lmargin2=24)
        self.text.tag_configure("cont", lmargin1=24)
        self.text.tag_configure("bold", font=(family, 11, "bold"))
        for i, colour in enumerate(NICK_PALETTE):
            self.text.tag_configure(f"nick{i}", foreground=colour, font=(family, 11, "bold"))
        self.recolour(colours)
        # keep the text selectable/copyable while read-only
        self.text.bind("<1>", lambda _e: self.text.focus_set())

    def recolour(self, colours: Colours) -> None:
        family = font(self, "TkTextFont")[0]
        self.text.configure(background=colours.background, foreground=colours.foreground,
                            selectbackground=colours.select, insertbackground=colours.foreground,
                            inactiveselectbackground=colours.select)
        self.text.tag_configure("ts", foreground=colours.muted)
        self.text.tag_configure("system", foreground=colours.muted,
                                font=(family, 10, "italic"))
        self.text.tag_configure("own", background=colours.own_background)
        self.text.tag_configure("ownnick", foreground=colours.own, font=(family, 11, "bold"))
        self.text.tag_configure("error", foreground=colours.error, font=(family, 11, "bold"),
                                background=colours.warning_background)
        self.text.tag_configure("undelivered", foreground=colours.error,
                                font=(family, 10, "italic"))
        self.text.tag_configure("warning", foreground=colours.error, font=(family, 10, "bold"))
        self.text.tag_raise("sel")

    # --- writing -------------------------------------------------------------------------------
    def _append(self, *chunks: str | tuple[str, ...]) -> None:
        at_bottom = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        self.text.insert("end", *chunks)
        self._trim()
        self.text.configure(state="disabled")
        if at_bottom:
            self.text.see("end")

    def add_message(self, sender: str, text: str, *, when: float | None = None,
                    own: bool = False, msg_id: int | None = None,
                    warning: str | None = None) -> None:
        when = time.time() if when is None else when
        line: tuple[str, ...] = ("own",) if own else ()
        mtag: tuple[str, ...] = ()
        if own and msg_id is not None:
            mtag = (f"m{msg_id}",)
            self._own_ids[msg_id] = mtag[0]
        nick = "ownnick" if own else _nick_tag(sender)
        chunks: list[str | tuple[str, ...]] = [
            f"{_clock(when)} ", ("ts", *line, *mtag), sender, (nick, *line, *mtag),
            "  ", (*line, *mtag)]
        if warning:
            chunks += [f"[{warning}] ", ("warning", *line, *mtag)]
        first, *more = printable(text).rstrip("\n").split("\n")
        chunks += [first, ("body", *line, *mtag)]
        for extra in more:   # continuation lines line up under the text, not the time
            chunks += ["\n", ("body", *line, *mtag), extra, ("body", "cont", *line, *mtag)]
        chunks += ["\n", line]
        self._append(*chunks)

    def add_system(self, text: str, *, when: float | None = None, error: bool = False) -> None:
        when = time.time() if when is None else when
        tag = "error" if error else "system"
        self._append(f"{_clock(when)} ", ("ts",), f"-!- {printable(text)}", (tag, "body"), "\n",
                     ())

    def mark_undelivered(self, msg_id: int, nickname: str) -> bool:
        """Add "not delivered to NICK" right after own message ``msg_id``; False if it is gone."""
        tag = self._own_ids.get(msg_id)
        if tag is None or not self.text.tag_ranges(tag):
            return False
        self.text.configure(state="normal")
        self.text.insert(f"{tag}.last", f"  ✗ not delivered to {nickname}",
                         ("undelivered", "own", tag))
        self.text.configure(state="disabled")
        return True

    def _trim(self) -> None:
        lines = int(self.text.index("end-1c").split(".")[0])
        if lines <= MAX_LINES:
            return
        # drop a tenth at once so trimming stays rare
        cut = lines - MAX_LINES + MAX_LINES // 10
        self.text.delete("1.0", f"{cut}.0")
        for msg_id, tag in list(self._own_ids.items()):
            if not self.text.tag_ranges(tag):
                self.text.tag_delete(tag)
                del self._own_ids[msg_id]

    def content(self) -> str:
        return self.text.get("1.0", "end-1c")


class InputLine(ttk.Frame):
    """A multi-line entry: Enter sends, Shift+Enter adds a line, Up/Down recall history."""

    def __init__(self, master: tk.Misc, colours: Colours, on_send: Callable[[str], bool]) -> None:
        super().__init__(master)
        self._on_send = on_send
        self.history: list[str] = []
        self._pos = 0          # index into history while recalling; len(history) = the draft
        self._draft = ""
        family = font(self, "TkTextFont")[0]
        self.text = tk.Text(self, height=2, width=20, wrap="word", undo=True, font=(family, 11),
                            padx=8, pady=6, borderwidth=1, relief="solid",
                            highlightthickness=1)
        self.text.grid(row=0, column=0, sticky="nsew")
        self.columnconfigure(0, weight=1)
        self.recolour(colours)
        t = self.text
        t.bind("<Return>", self._enter)
        t.bind("<KP_Enter>", self._enter)
        t.bind("<Shift-Return>", self._newline)
        t.bind("<Shift-KP_Enter>", self._newline)
        t.bind("<Up>", self._up)
        t.bind("<Down>", self._down)
        t.bind("<Tab>", self._focus_next)
        t.bind("<Shift-Tab>", self._focus_prev)
        t.bind("<ISO_Left_Tab>", self._focus_prev)
        # more specific than <Tab> above, so Ctrl+Tab reaches the window's tab switching
        for seq in ("<Control-Tab>", "<Control-Shift-Tab>", "<Control-ISO_Left_Tab>"):
            t.bind(seq, lambda _e: None)

    def recolour(self, colours: Colours) -> None:
        self.text.configure(background=colours.background, foreground=colours.foreground,
                            insertbackground=colours.foreground,
                            selectbackground=colours.select, highlightcolor=colours.own,
                            highlightbackground=colours.muted)

    def get(self) -> str:
        return self.text.get("1.0", "end-1c")

    def set(self, value: str) -> None:
        self.text.delete("1.0", "end")
        self.text.insert("1.0", value)
        self.text.mark_set("insert", "end-1c")

    def submit(self) -> None:
        value = self.get().strip("\n")
        if not value.strip():
            return
        if self._on_send(value):
            if not self.history or self.history[-1] != value:
                self.history.append(value)
                del self.history[:-MAX_HISTORY]
            self._pos = len(self.history)
            self._draft = ""
            self.set("")

    def _enter(self, _event: object) -> str:
        self.submit()
        return "break"

    def _newline(self, _event: object) -> str:
        self.text.insert("insert", "\n")
        self.text.see("insert")
        return "break"

    def _up(self, _event: object) -> str | None:
        if self.text.compare("insert linestart", "!=", "1.0") or not self.history:
            return None          # ordinary cursor movement inside a multi-line draft
        if self._pos == len(self.history):
            self._draft = self.get()
        self._pos = max(0, self._pos - 1)
        self.set(self.history[self._pos])
        return "break"

    def _down(self, _event: object) -> str | None:
        if self.text.compare("insert lineend", "!=", "end-1c") or \
                self._pos >= len(self.history):
            return None
        self._pos += 1
        self.set(self.draft_or_history())
        return "break"

    def draft_or_history(self) -> str:
        return self._draft if self._pos == len(self.history) else self.history[self._pos]

    def _focus_next(self, _event: object) -> str:
        self.text.tk_focusNext().focus_set()
        return "break"

    def _focus_prev(self, _event: object) -> str:
        self.text.tk_focusPrev().focus_set()
        return "break"


class ChatTab(ttk.Frame):
    """The room (peer None) or one private conversation: messages, input, buttons."""

    def __init__(self, master: tk.Misc, colours: Colours, peer: str | None, *,
                 on_send: Callable[[str | None, str], bool],
                 on_send_file: Callable[[str], None] | None = None) -> None:
        super().__init__(master, padding=(0, 0, 0, 6))
        self.peer = peer
        self.unread = 0
        self.view = MessageView(self, colours)
        self.view.grid(row=0, column=0, sticky="nsew")
        bottom = ttk.Frame(self, padding=(0, 6, 0, 0))
        bottom.grid(row=1, column=0, sticky="ew")
        self.input = InputLine(bottom, colours, lambda text: on_send(self.peer, text))
        self.input.grid(row=0, column=0, sticky="ew")
        self.send_button = ttk.Button(bottom, text="Send", style="Accent.TButton",
                                      command=self.input.submit)
        self.send_button.grid(row=0, column=1, sticky="ns", padx=(6, 0))
        if peer is not None and on_send_file is not None:
            self.file_button = ttk.Button(bottom, text="Send file…",
                                          command=lambda: on_send_file(peer))
            self.file_button.grid(row=0, column=2, sticky="ns", padx=(6, 0))
        bottom.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        # the message view never takes focus: Page Up/Down in the input scroll it
        for key, pages in (("<Prior>", -1), ("<Next>", 1)):
            self.input.text.bind(key, lambda _e, n=pages: self._scroll(n))

    def _scroll(self, pages: int) -> str:
        self.view.text.yview_scroll(pages, "pages")
        return "break"

    def recolour(self, colours: Colours) -> None:
        self.view.recolour(colours)
        self.input.recolour(colours)

    @property
    def title(self) -> str:
        name = "# room" if self.peer is None else self.peer
        return f"{name} ({self.unread})" if self.unread else name


class Roster(ttk.Frame):
    """Who is online: double-click or Enter opens a private tab; right-click (or Shift+F10,
    the Menu key) opens a menu with "Private chat", "Who is this?" and "Send file…"."""

    def __init__(self, master: tk.Misc, *, on_open: Callable[[str], None],
                 on_whois: Callable[[str], None],
                 on_send_file: Callable[[str], None] | None) -> None:
        super().__init__(master, padding=(6, 0, 0, 0))
        self._on_open = on_open
        self.me: str | None = None
        self.nicks: set[str] = set()
        self.markers: dict[str, str] = {}
        self.count_var = tk.StringVar(self, value="0 online")
        ttk.Label(self, textvariable=self.count_var,
                  font=font(self, "TkHeadingFont", 11, "bold")).grid(
            row=0, column=0, sticky="w", pady=(4, 6))
        self.tree = ttk.Treeview(self, show="tree", selectmode="browse", height=10)
        self.tree.column("#0", width=170, stretch=True)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=1, column=0, sticky="nsew")
        scroll.grid(row=1, column=1, sticky="ns")
        self.rowconfigure(1, weight=1)
        self.columnconfigure(0, weight=1)
        for i, colour in enumerate(NICK_PALETTE):
            self.tree.tag_configure(f"nick{i}", foreground=colour)
        self.tree.tag_configure("me", font=font(self, "TkDefaultFont", None, "bold"))
        self.tree.tag_configure("alarm", foreground="#c42b1c")
        self.menu = tk.Menu(self, tearoff=False)
        self.menu.add_command(label="Private chat", command=self._menu(on_open))
        self.menu.add_command(label="Who is this?", command=self._menu(on_whois))
        if on_send_file is not None:
            self.menu.add_command(label="Send file…", command=self._menu(on_send_file))
        self.tree.bind("<Double-1>", self._double_click)
        self.tree.bind("<Return>", lambda _e: self._open_selected())
        self.tree.bind("<Button-3>", self._context)
        self.tree.bind("<Shift-F10>", self._context_key)
        # the Menu key is "App" on Windows, "Menu" on X11
        self.tree.bind("<App>" if sys.platform == "win32" else "<Menu>", self._context_key)

    # --- content -------------------------------------------------------------------------------
    def set_all(self, me: str, nicks: Iterable[str]) -> None:
        self.me = me
        self.nicks = {n for n in nicks if n != me}
        self._refresh()

    def add(self, nick: str) -> None:
        if nick != self.me:
            self.nicks.add(nick)
            self._refresh()

    def remove(self, nick: str) -> None:
        self.nicks.discard(nick)
        self._refresh()

    def set_marker(self, nick: str, marker: str | None) -> None:
        if marker:
            self.markers[nick] = marker
        else:
            self.markers.pop(nick, None)
        self._refresh()

    def set_markers(self, changes: dict[str, str | None]) -> None:
        """Several ``set_marker`` calls with one redraw (a whole roster at connect)."""
        for nick, marker in changes.items():
            if marker:
                self.markers[nick] = marker
            else:
                self.markers.pop(nick, None)
        if changes:
            self._refresh()

    def _refresh(self) -> None:
        # drop markers of people long gone so the dict never outgrows the roster much
        if len(self.markers) > 4 * len(self.nicks) + 64:
            self.markers = {n: m for n, m in self.markers.items() if n in self.nicks}
        selected = self.selected()
        self.tree.delete(*self.tree.get_children())
        if self.me is not None:
            self.tree.insert("", "end", iid="me", text=f"{self.me} (you)", tags=("me",))
        for nick in sorted(self.nicks, key=str.casefold):
            marker = self.markers.get(nick, "")
            tags = ("alarm",) if marker.startswith("⚠") else (_nick_tag(nick),)
            self.tree.insert("", "end", iid=_iid(nick), text=f"{marker} {nick}".strip(),
                             tags=tags)
        if selected in self.nicks:
            self.tree.selection_set(_iid(selected))
            self.tree.focus(_iid(selected))
        total = len(self.nicks) + (1 if self.me is not None else 0)
        self.count_var.set(f"{total} online")

    def selected(self) -> str | None:
        sel = self.tree.selection()
        return _nick(sel[0]) if sel else None

    def text_of(self, nick: str) -> str:
        return str(self.tree.item(_iid(nick), "text"))

    # --- actions -------------------------------------------------------------------------------
    def _menu(self, action: Callable[[str], None]) -> Callable[[], None]:
        def run() -> None:
            nick = self.selected()
            if nick is not None:
                action(nick)
        return run

    def _open_selected(self) -> str:
        nick = self.selected()
        if nick is not None:
            self._on_open(nick)
        return "break"

    def _double_click(self, event: tk.Event) -> str:
        row = self.tree.identify_row(event.y)
        nick = _nick(row)
        if nick is not None:
            self.tree.selection_set(row)
            self._on_open(nick)
        return "break"

    def _context(self, event: tk.Event) -> str:
        row = self.tree.identify_row(event.y)
        if _nick(row) is None:
            return "break"
        self.tree.selection_set(row)
        self.tree.focus(row)
        self.menu.tk_popup(event.x_root, event.y_root)
        return "break"

    def _context_key(self, _event: tk.Event) -> str:
        nick = self.selected()
        if nick is None:
            return "break"
        bbox = self.tree.bbox(_iid(nick))
        x = self.tree.winfo_rootx() + (bbox[0] + 20 if bbox else 20)
        y = self.tree.winfo_rooty() + (bbox[1] + bbox[3] if bbox else 20)
        self.menu.tk_popup(x, y)
        return "break"


