"""The list of people online: open a private tab, "Who is this?", "Send file…"."""

from __future__ import annotations

import sys
import tkinter as tk
from collections.abc import Callable, Iterable
from tkinter import ttk

from client.gui.chat import _iid, _nick, _nick_tag
from client.gui.theme import NICK_PALETTE, font


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
