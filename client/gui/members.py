"""The list of people, per conversation: a channel shows its members, a private conversation
everyone online. People who are away are greyed; hovering one shows the away text."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Iterable

from client.chat import names
from client.gui.chat import _iid, _nick, printable
from client.gui.roster import Roster
from client.gui.theme import Colours

TOOLTIP_DELAY_MS = 400


class MemberRoster(Roster):
    def __init__(self, master: tk.Misc, *, on_open: Callable[[str], None],
                 on_whois: Callable[[str], None],
                 on_send_file: Callable[[str], None] | None) -> None:
        super().__init__(master, on_open=on_open, on_whois=on_whois,
                         on_send_file=on_send_file)
        self.channel: str | None = None      # None: everyone online
        self._only: set[str] | None = None   # member nick keys
        self.away: dict[str, str] = {}
        self.tooltip = Tooltip(self.tree)
        self.tree.bind("<Motion>", self._hover, add="+")
        self.tree.bind("<Leave>", lambda _e: self.tooltip.hide(), add="+")

    def recolour(self, colours: Colours) -> None:
        self.tree.tag_configure("away", foreground=colours.muted)
        self.tooltip.colours = colours

    def show_members(self, channel: str | None, members: Iterable[str] | None,
                     away: dict[str, str]) -> None:
        """``channel`` and its ``members`` (None: everyone online); ``away``: nick -> text."""
        self.channel = channel
        self._only = None if members is None else {names.peer_key(n) for n in members}
        self.away = {names.peer_key(n): text for n, text in away.items()}
        self._refresh()

    def away_text(self, nick: str) -> str | None:
        return self.away.get(names.peer_key(nick))

    def _refresh(self) -> None:
        super()._refresh()
        shown = 1 if self.me is not None else 0
        for nick in self.nicks:
            key = names.peer_key(nick)
            if self._only is not None and key not in self._only:
                self.tree.delete(_iid(nick))
                continue
            shown += 1
            if key in self.away:
                self.tree.item(_iid(nick), tags=("away",),
                               text=f"{self.tree.item(_iid(nick), 'text')} (away)")
        if self.me is not None and self.away_text(self.me) is not None:
            self.tree.item("me", text=f"{self.me} (you, away)")
        if self.channel is not None:
            self.count_var.set(f"{self.channel} · {shown}")

    def _hover(self, event: tk.Event) -> None:
        nick = _nick(self.tree.identify_row(event.y))
        if nick is None and self.tree.identify_row(event.y) == "me":
            nick = self.me
        text = self.away_text(nick) if nick is not None else None
        if text is None:
            self.tooltip.hide()
        else:
            self.tooltip.show(f"{nick} is away: {text}", event.x_root + 12, event.y_root + 12)


class Tooltip:
    """A small borderless window near the pointer, shown after a short pause."""

    def __init__(self, widget: tk.Misc) -> None:
        self.widget = widget
        self.colours: Colours | None = None
        self.text = ""
        self._top: tk.Toplevel | None = None
        self._after: str | None = None

    def show(self, text: str, x: int, y: int) -> None:
        if text == self.text and (self._top is not None or self._after is not None):
            return
        self.hide()
        self.text = text
        self._after = self.widget.after(TOOLTIP_DELAY_MS, lambda: self._open(x, y))

    def _open(self, x: int, y: int) -> None:
        self._after = None
        top = self._top = tk.Toplevel(self.widget)
        top.wm_overrideredirect(True)
        top.wm_geometry(f"+{x}+{y}")
        colours = self.colours
        tk.Label(top, text=printable(self.text), justify="left", padx=6, pady=3,
                 borderwidth=1, relief="solid", wraplength=320,
                 background=colours.background if colours else "#ffffe0",
                 foreground=colours.foreground if colours else "#000000").pack()
        top.update_idletasks()   # kept inside the window: the roster is at its right edge
        window = self.widget.winfo_toplevel()
        room = window.winfo_rootx() + window.winfo_width() - top.winfo_reqwidth() - 4
        if x > room:
            top.wm_geometry(f"+{max(0, room)}+{y}")

    def hide(self) -> None:
        self.text = ""
        if self._after is not None:
            self.widget.after_cancel(self._after)
            self._after = None
        if self._top is not None:
            self._top.destroy()
            self._top = None
