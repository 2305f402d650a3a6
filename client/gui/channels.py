"""The conversations beside the messages (like HexChat's channel tree or a Discord sidebar).

Two groups: "Channels" (ours; ``#room`` first) and "Private" (open private conversations). Each
row shows its unread count; a row whose unread lines name us is highlighted. Clicking a row (or
Enter) opens that conversation; right-click (or the Menu key) offers "Leave #channel" or "Close
conversation"; the button under the list opens "Join channel…".
"""

from __future__ import annotations

import sys
import tkinter as tk
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from tkinter import ttk

from client.gui.theme import Colours, font

CHANNELS = "g:channels"
PEOPLE = "g:people"


@dataclass(frozen=True)
class Row:
    """One conversation in the list: ``target`` is ``#name`` or a nickname."""

    target: str
    unread: int = 0
    mention: bool = False
    joined: bool = True   # False: a channel we left (its messages stay readable)
    away: bool = False    # a private conversation with someone away


def _iid(target: str) -> str:
    return "t:" + target


class ChannelList(ttk.Frame):
    def __init__(self, master: tk.Misc, colours: Colours, *,
                 on_open: Callable[[str], None], on_join: Callable[[], None],
                 on_leave: Callable[[str], None], on_close: Callable[[str], None]) -> None:
        super().__init__(master, padding=(0, 0, 6, 0))
        self._on_open = on_open
        self._on_leave, self._on_close = on_leave, on_close
        self.rows: dict[str, Row] = {}
        ttk.Label(self, text="Conversations", font=font(self, "TkHeadingFont", 11, "bold")
                  ).grid(row=0, column=0, sticky="w", pady=(4, 6))
        self.tree = ttk.Treeview(self, show="tree", selectmode="browse", columns=("unread",),
                                 height=10)
        self.tree.column("#0", width=130, stretch=True)
        self.tree.column("unread", width=34, stretch=False, anchor="e")
        self.tree.grid(row=1, column=0, sticky="nsew")
        self.join_button = ttk.Button(self, text="Join channel…", command=on_join)
        self.join_button.grid(row=2, column=0, sticky="ew", pady=(6, 0))
        self.rowconfigure(1, weight=1)
        self.columnconfigure(0, weight=1)
        for iid, label in ((CHANNELS, "Channels"), (PEOPLE, "Private")):
            self.tree.insert("", "end", iid=iid, text=label, open=True, tags=("group",))
        self.recolour(colours)
        self.tree.bind("<<TreeviewSelect>>", self._selected)
        self.tree.bind("<Return>", self._selected)
        self.menu = tk.Menu(self, tearoff=False)
        self.tree.bind("<Button-3>", self._context)
        for key in ("<Shift-F10>", "<App>" if sys.platform == "win32" else "<Menu>"):
            self.tree.bind(key, self._context_key)

    def recolour(self, colours: Colours) -> None:
        bold = font(self, "TkDefaultFont", None, "bold")
        self.tree.tag_configure("group", foreground=colours.muted, font=bold)
        self.tree.tag_configure("unread", font=bold)
        self.tree.tag_configure("mention", foreground=colours.error, font=bold)
        self.tree.tag_configure("parted", foreground=colours.muted)
        self.tree.tag_configure("away", foreground=colours.muted)

    # --- content -------------------------------------------------------------------------------
    def set_rows(self, channels: Iterable[Row], people: Iterable[Row],
                 current: str | None) -> None:
        """Redraw the list; ``current`` is the conversation shown (selected, never unread)."""
        wanted = {CHANNELS: list(channels), PEOPLE: list(people)}
        self.rows = {r.target: r for group in wanted.values() for r in group}
        for parent, rows in wanted.items():
            keep = {_iid(r.target) for r in rows}
            for child in self.tree.get_children(parent):
                if child not in keep:
                    self.tree.delete(child)
            for index, row in enumerate(rows):
                iid = _iid(row.target)
                values = (str(row.unread) if row.unread else "",)
                if self.tree.exists(iid):
                    self.tree.item(iid, text=row.target, values=values, tags=_tags(row))
                    self.tree.move(iid, parent, index)
                else:
                    self.tree.insert(parent, index, iid=iid, text=row.target, values=values,
                                     tags=_tags(row))
        if current is not None and self.tree.exists(_iid(current)):
            if self.tree.selection() != (_iid(current),):
                self.tree.selection_set(_iid(current))
            self.tree.see(_iid(current))

    def label_of(self, target: str) -> str:
        """The row as shown (name, then the unread count if any), for tests."""
        iid = _iid(target)
        unread = self.tree.set(iid, "unread")
        return f"{self.tree.item(iid, 'text')} {unread}".strip()

    def tags_of(self, target: str) -> tuple[str, ...]:
        return tuple(self.tree.item(_iid(target), "tags"))

    def targets(self) -> list[str]:
        return [str(self.tree.item(i, "text")) for g in (CHANNELS, PEOPLE)
                for i in self.tree.get_children(g)]

    def _selected(self, _event: object = None) -> None:
        sel = self.tree.selection()
        if sel and sel[0].startswith("t:"):
            self._on_open(sel[0][2:])


    # --- the row's menu ------------------------------------------------------------------------
    def menu_for(self, target: str) -> tk.Menu:
        """The menu of ``target``'s row (a channel: leave it; a person: close the tab)."""
        self.menu.delete(0, "end")
        if target.startswith("#"):
            self.menu.add_command(label=f"Leave {target}",
                                  command=lambda: self._on_leave(target))
        else:
            self.menu.add_command(label="Close conversation",
                                  command=lambda: self._on_close(target))
        return self.menu

    def _context(self, event: tk.Event) -> str:
        row = self.tree.identify_row(event.y)
        if row.startswith("t:"):
            self.menu_for(row[2:]).tk_popup(event.x_root, event.y_root)
        return "break"

    def _context_key(self, _event: tk.Event) -> str:
        sel = self.tree.selection()
        if sel and sel[0].startswith("t:"):
            bbox = self.tree.bbox(sel[0])
            x = self.tree.winfo_rootx() + (bbox[0] + 20 if bbox else 20)
            y = self.tree.winfo_rooty() + (bbox[1] + bbox[3] if bbox else 20)
            self.menu_for(sel[0][2:]).tk_popup(x, y)
        return "break"


def _tags(row: Row) -> tuple[str, ...]:
    if row.mention:
        return ("mention",)
    if row.unread:
        return ("unread",)
    if not row.joined:
        return ("parted",)
    return ("away",) if row.away else ()
