"""The chat widgets: message view, input line, one tab, the roster.

Text positions are never computed with Python ``len()``: Tk counts an emoji (outside the BMP)
as two index positions, so everything is inserted at ``"end"`` and found again through tags.
Each own message carries the tag ``m<msg_id>``; "not delivered to X" is inserted at that tag's
``.last`` index, right after the message it concerns.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import time
import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import ttk

from client.gui.emoji_art import EmojiArt, pixel_size, split_emoji
from client.gui.emoji_picker import EmojiPicker
from client.gui.theme import NICK_PALETTE, Colours, colour_menu, font, nick_colour

log = logging.getLogger(__name__)

MAX_LINES = 4000       # message view keeps at most this many lines (memory stays bounded)
MAX_HISTORY = 100      # input lines remembered for Up/Down
COLLAPSE_LINES = 8     # a longer message shows this many lines and "show more"
COLLAPSE_CHARS = 1500  # ... or this many characters
DEFAULT_SIZE = 11      # text size in points (Settings changes it)


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
    """A read-only, scrolling, bounded log of chat lines.

    Emoji become pictures where ``art`` has them (client/gui/emoji_art.py); ``content`` and
    copying give the text back. A message longer than COLLAPSE_LINES lines (or COLLAPSE_CHARS
    characters) shows its start and a "show more" link, so one paste cannot flood the view.
    """

    def __init__(self, master: tk.Misc, colours: Colours, *, art: EmojiArt | None = None,
                 size: int = DEFAULT_SIZE) -> None:
        super().__init__(master)
        self.art = art
        self.size = size
        self.family = font(self, "TkTextFont")[0]
        # small requested size: the grid stretches it, and a small window still fits everything
        self.text = tk.Text(self, wrap="word", state="disabled", borderwidth=0, width=30, height=8,
                            highlightthickness=0, padx=10, pady=8, undo=False,
                            spacing1=2, spacing3=2, takefocus=0)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self._scrollbar)
        self.text.configure(yscrollcommand=scroll.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self._own_ids: dict[int, str] = {}
        self._actions: dict[str, Callable[[], None]] = {}   # link tag -> what a click does
        self._follow: str | None = None     # after_idle that scrolls to the end
        self._folded: dict[str, list[str | tuple[str, ...]]] = {}   # fold -> its hidden rest
        self.bind("<Destroy>", self._destroyed, add="+")
        # following the end: new lines scroll into view, and so does a resize (the files panel
        # appearing) -- until the user scrolls up to read
        self._stick = True
        for seq in ("<MouseWheel>", "<Button-4>", "<Button-5>"):
            self.text.bind(seq, lambda _e: self.text.after_idle(self._user_scrolled), add="+")
        self.text.bind("<Configure>", lambda _e: self._stick and self._follow_end(), add="+")
        self._serial = itertools.count(1)
        self.colours = colours
        self.text.tag_configure("body", lmargin2=24)
        self.text.tag_configure("cont", lmargin1=24)
        self.menu = tk.Menu(self, tearoff=False)
        self.menu.add_command(label="Copy", command=lambda: self._copy(None))
        self.menu.add_command(label="Select all",
                              command=lambda: self.text.tag_add("sel", "1.0", "end-1c"))
        self.set_size(size)
        self.text.tag_bind("link", "<Enter>", lambda _e: self.text.configure(cursor="hand2"))
        self.text.tag_bind("link", "<Leave>", lambda _e: self.text.configure(cursor=""))
        # keep the text selectable/copyable while read-only
        self.text.bind("<1>", lambda _e: self.text.focus_set())
        self.text.bind("<<Copy>>", self._copy)
        self.text.bind("<Button-3>", self._context)

    def set_size(self, size: int) -> None:
        """Text size in points (Settings); fonts of every tag follow."""
        self.size = size
        family, small = self.family, max(7, size - 1)
        self.text.configure(font=(family, size))
        self.text.tag_configure("bold", font=(family, size, "bold"))
        for i, colour in enumerate(NICK_PALETTE):
            self.text.tag_configure(f"nick{i}", foreground=colour, font=(family, size, "bold"))
        emoji_family = self.art.font_family if self.art is not None else None
        if emoji_family:
            self.text.tag_configure("emoji", font=(emoji_family, size))
        self.text.tag_configure("more", font=(family, small, "bold"))
        self.recolour(self.colours)

    def recolour(self, colours: Colours) -> None:
        self.colours = colours
        family, size, small = self.family, self.size, max(7, self.size - 1)
        self.text.configure(background=colours.background, foreground=colours.foreground,
                            selectbackground=colours.select, insertbackground=colours.foreground,
                            inactiveselectbackground=colours.select)
        self.text.tag_configure("ts", foreground=colours.muted)
        self.text.tag_configure("system", foreground=colours.muted,
                                font=(family, small, "italic"))
        self.text.tag_configure("own", background=colours.own_background)
        self.text.tag_configure("ownnick", foreground=colours.own, font=(family, size, "bold"))
        self.text.tag_configure("error", foreground=colours.error, font=(family, size, "bold"),
                                background=colours.warning_background)
        self.text.tag_configure("undelivered", foreground=colours.error,
                                font=(family, small, "italic"))
        self.text.tag_configure("warning", foreground=colours.error, font=(family, small, "bold"))
        self.text.tag_configure("link", foreground=colours.own, underline=True)
        self.text.tag_configure("more", foreground=colours.own)
        self.text.tag_raise("sel")
        colour_menu(self.menu, colours)

    # --- writing -------------------------------------------------------------------------------
    def _append(self, *chunks: str | tuple[str, ...]) -> None:
        at_bottom = self._stick
        self.text.configure(state="normal")
        for i in range(0, len(chunks), 2):
            self._insert(str(chunks[i]), tuple(chunks[i + 1]))
        self._trim()
        self.text.configure(state="disabled")
        if at_bottom:
            self.text.yview_moveto(1.0)
            self._follow_end()

    def _follow_end(self) -> None:
        # Tk measures wrapped lines lazily: look again once the layout is done
        if self._follow is None:
            self._follow = self.after_idle(self._to_bottom)

    def _scrollbar(self, *args: str) -> None:
        self.text.yview(*args)
        self._user_scrolled()

    def scroll_pages(self, pages: int) -> None:
        self.text.yview_scroll(pages, "pages")
        self._user_scrolled()

    def _user_scrolled(self) -> None:
        self._stick = self.text.yview()[1] >= 0.999

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is self and self._follow is not None:
            with contextlib.suppress(tk.TclError):
                self.after_cancel(self._follow)
            self._follow = None

    def _to_bottom(self) -> None:
        self._follow = None
        self.text.tk.call(self.text, "sync")    # line heights measured now, not later
        self.text.see("end")
        self.text.yview_moveto(1.0)

    def _insert(self, text: str, tags: tuple[str, ...], at: str = "end") -> None:
        """Insert at the end (or at mark ``at``, which moves on); emoji as pictures when there
        are pictures for them."""
        art = self.art
        if art is None or not text or text.isascii():
            self.text.insert(at, text, tags)
            return
        pixels = pixel_size(self, self.size)
        # "end" stays after Tk's final newline; a mark with right gravity moves past the image
        placed = "end-2c" if at == "end" else f"{at}-1c"
        for piece, is_emoji in split_emoji(text):
            image = art.image(piece, pixels) if is_emoji and art.pictures else None
            if image is None:
                self.text.insert(at, piece, (*tags, "emoji") if is_emoji else tags)
                continue
            self.text.image_create(at, image=image, padx=1, align="center")
            for tag in tags:
                self.text.tag_add(tag, placed)

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
        shown, folded = fold_text(printable(text).rstrip("\n"))

        def body(part: str, extra: tuple[str, ...], cont: tuple[str, ...]) -> None:
            first, *more = part.split("\n")
            chunks.extend([first, ("body", *cont, *line, *mtag, *extra)])
            for rest in more:   # continuation lines line up under the text, not the time
                chunks.extend(["\n", ("body", *line, *mtag, *extra), rest,
                               ("body", "cont", *line, *mtag, *extra)])

        body(shown, (), ())
        if folded:
            # the rest waits here, not in the widget (Tk's elide draws stray lines)
            fold = f"fold{next(self._serial)}"
            more_lines = folded.strip("\n").count("\n") + 1
            chunks += ["  ", ("body", *line, *mtag),
                       f"▾ show more ({more_lines} more line{'s' * (more_lines > 1)})",
                       ("more", "link", f"{fold}link", *line, *mtag)]
            self._link(f"{fold}link", lambda f=fold: self.unfold(f))
            start = len(chunks)
            body(folded, (), ("cont",))
            self._folded[fold] = chunks[start:]
            del chunks[start:]
        chunks += ["\n", line]
        self._append(*chunks)

    def unfold(self, fold: str) -> None:
        """Show the whole of a collapsed message (its "show more" link)."""
        chunks = self._folded.pop(fold, [])
        ranges = self.text.tag_ranges(f"{fold}link")
        self._actions.pop(f"{fold}link", None)
        if ranges:
            self.text.configure(state="normal")
            self.text.mark_set("unfold", ranges[0])
            self.text.mark_gravity("unfold", "right")
            self.text.delete(ranges[0], ranges[1])
            for i in range(0, len(chunks), 2):
                self._insert(str(chunks[i]), tuple(chunks[i + 1]), at="unfold")
            self.text.mark_unset("unfold")
            self.text.configure(state="disabled")
        self.text.configure(cursor="")

    def folded(self) -> list[str]:
        """The folds of messages still collapsed (oldest first)."""
        return list(self._folded)

    def add_system(self, text: str, *, when: float | None = None, error: bool = False,
                   links: Sequence[tuple[str, Callable[[], None]]] = ()) -> None:
        """A ``-!-`` line; ``links`` are (label, action) shown after it as clickable words."""
        when = time.time() if when is None else when
        tag = "error" if error else "system"
        chunks: list[str | tuple[str, ...]] = [f"{_clock(when)} ", ("ts",),
                                               f"-!- {printable(text)}", (tag, "body")]
        for label, action in links:
            name = f"link{next(self._serial)}"
            self._link(name, action)
            chunks += ["  ", (tag, "body"), label, ("link", name, "body")]
        self._append(*chunks, "\n", ())

    def link_names(self) -> dict[str, str]:
        """Each clickable label shown -> its tag (tests click through these)."""
        found: dict[str, str] = {}
        for tag in self._actions:
            ranges = self.text.tag_ranges(tag)
            if ranges:
                found[self.text.get(ranges[0], ranges[1]).strip()] = tag
        return found

    def _link(self, tag: str, action: Callable[[], None]) -> None:
        self._actions[tag] = action
        self.text.tag_bind(tag, "<Button-1>", lambda _e: self.click(tag))

    def click(self, tag: str) -> None:
        """What a click on the link ``tag`` does."""
        action = self._actions.get(tag)
        if action is not None:
            action()

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
        for tag in self.text.tag_names():    # links and folds that scrolled away
            if tag.startswith(("link", "fold")) and tag != "link" \
                    and not self.text.tag_ranges(tag):
                self.text.tag_delete(tag)
                self._actions.pop(tag, None)
                self._folded.pop(tag.removesuffix("link"), None)

    def text_between(self, start: str, end: str) -> str:
        """The text from ``start`` to ``end``, emoji pictures given back as emoji."""
        names = self.art.names if self.art is not None else {}
        out: list[str] = []
        for kind, value, _index in self.text.dump(start, end, text=True, image=True):
            if kind == "text":
                out.append(value)
            elif kind == "image":
                out.append(names.get(value.split("#", 1)[0], ""))  # "img#2": its 2nd use
        return "".join(out)

    def content(self) -> str:
        return self.text_between("1.0", "end-1c")

    def _copy(self, _event: object) -> str:
        if self.text.tag_ranges("sel"):
            self.clipboard_clear()
            self.clipboard_append(self.text_between("sel.first", "sel.last"))
        return "break"

    def _context(self, event: tk.Event) -> str:
        self.text.focus_set()
        self.menu.tk_popup(event.x_root, event.y_root)
        return "break"


def fold_text(text: str) -> tuple[str, str]:
    """``(shown, folded)``: the start of a long message and the rest ("" if it is short)."""
    lines = text.split("\n")
    if len(lines) <= COLLAPSE_LINES and len(text) <= COLLAPSE_CHARS:
        return text, ""
    shown = "\n".join(lines[:COLLAPSE_LINES])[:COLLAPSE_CHARS]
    return shown, text[len(shown):]     # the rest may start with its line break


class InputLine(ttk.Frame):
    """A multi-line entry: Enter sends, Shift+Enter adds a line, Up/Down recall history."""

    def __init__(self, master: tk.Misc, colours: Colours, on_send: Callable[[str], bool], *,
                 size: int = DEFAULT_SIZE) -> None:
        super().__init__(master)
        self._on_send = on_send
        self.history: list[str] = []
        self._pos = 0          # index into history while recalling; len(history) = the draft
        self._draft = ""
        self.family = font(self, "TkTextFont")[0]
        self.text = tk.Text(self, height=2, width=20, wrap="word", undo=True,
                            font=(self.family, size), padx=8, pady=6, borderwidth=1,
                            relief="solid", highlightthickness=1)
        self.text.grid(row=0, column=0, sticky="nsew")
        self.columnconfigure(0, weight=1)
        self.menu = tk.Menu(self, tearoff=False)
        for label, event in (("Cut", "<<Cut>>"), ("Copy", "<<Copy>>"), ("Paste", "<<Paste>>")):
            self.menu.add_command(label=label,
                                  command=lambda e=event: self.text.event_generate(e))
        self.menu.add_command(label="Select all",
                              command=lambda: self.text.tag_add("sel", "1.0", "end-1c"))
        self.text.bind("<Button-3>", self._context)
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

    def _context(self, event: tk.Event) -> str:
        self.text.focus_set()
        self.menu.tk_popup(event.x_root, event.y_root)
        return "break"

    def recolour(self, colours: Colours) -> None:
        colour_menu(self.menu, colours)
        self.text.configure(background=colours.background, foreground=colours.foreground,
                            insertbackground=colours.foreground,
                            selectbackground=colours.select, highlightcolor=colours.own,
                            highlightbackground=colours.muted)

    def set_size(self, size: int) -> None:
        self.text.configure(font=(self.family, size))

    def insert(self, text: str) -> None:
        """Type ``text`` at the cursor (the emoji picker)."""
        self.text.insert("insert", text)
        self.text.see("insert")
        self.text.focus_set()

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
                 on_send_file: Callable[[str], None] | None = None,
                 art: EmojiArt | None = None, size: int = DEFAULT_SIZE) -> None:
        super().__init__(master, padding=(0, 0, 0, 6))
        self.peer = peer
        self.unread = 0
        self.art, self.colours, self.size = art, colours, size
        self.picker: EmojiPicker | None = None
        self.view = MessageView(self, colours, art=art, size=size)
        self.view.grid(row=0, column=0, sticky="nsew")
        bottom = ttk.Frame(self, padding=(0, 6, 0, 0))
        bottom.grid(row=1, column=0, sticky="ew")
        self.input = InputLine(bottom, colours, lambda text: on_send(self.peer, text), size=size)
        self.input.grid(row=0, column=0, sticky="ew")
        face = art.image("🙂", 20) if art is not None and art.pictures else None
        self.emoji_button = ttk.Button(bottom, text="☺" if face is None else "", image=face or "",
                                       width=2, command=self.open_picker, takefocus=0)
        self.emoji_button.grid(row=0, column=1, sticky="ns", padx=(6, 0))
        self.send_button = ttk.Button(bottom, text="Send", style="Accent.TButton",
                                      command=self.input.submit)
        self.send_button.grid(row=0, column=2, sticky="ns", padx=(6, 0))
        if peer is not None and on_send_file is not None:
            self.file_button = ttk.Button(bottom, text="Send file…",
                                          command=lambda: on_send_file(peer))
            self.file_button.grid(row=0, column=3, sticky="ns", padx=(6, 0))
        for seq in ("<Control-e>", "<Control-E>"):
            self.input.text.bind(seq, lambda _e: self.open_picker() or "break")
        bottom.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        # the message view never takes focus: Page Up/Down in the input scroll it
        for key, pages in (("<Prior>", -1), ("<Next>", 1)):
            self.input.text.bind(key, lambda _e, n=pages: self._scroll(n))

    def _scroll(self, pages: int) -> str:
        self.view.scroll_pages(pages)
        return "break"

    def open_picker(self) -> None:
        """The emoji picker (the ☺ button, Ctrl+E): a pick is typed at the cursor."""
        if self.picker is not None:
            self.picker.close()
        self.picker = EmojiPicker(self.emoji_button, self.art, self.colours, self.input.insert,
                                  size=self.size)

    def set_size(self, size: int) -> None:
        self.size = size
        self.view.set_size(size)
        self.input.set_size(size)

    def recolour(self, colours: Colours) -> None:
        self.colours = colours
        self.view.recolour(colours)
        self.input.recolour(colours)

    @property
    def title(self) -> str:
        name = "# room" if self.peer is None else self.peer
        return f"{name} ({self.unread})" if self.unread else name
