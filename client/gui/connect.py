"""The connect screen: server address and nickname, errors in plain words (client/wording.py).

The form hangs from a fixed point near the top and the message line below it has room for
three lines from the start, so an error or "Connecting…" never moves the fields.
While connecting, Cancel (or Escape) gives the form back.
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.config import DEFAULT_PORT, format_address
from client.gui.theme import Colours, font
from client.reach.lan import Identity, LanDiscovery
from client.reach.lancache import LanEvent

log = logging.getLogger(__name__)

SERVER_HINT = f"e.g. 192.168.1.10 or chat.example.org:{DEFAULT_PORT}"


def scout_servers(on_found: Callable[[list[str]], None]) -> LanDiscovery | None:
    """Listen (never announce) for directory servers on this network; ``on_found`` gets the
    "host:port" list, on the discovery thread, whenever it changes. None if unavailable."""

    def heard(_events: list[LanEvent]) -> None:
        on_found(sorted(format_address(s.addr) for s in scout.snapshot()[1]))

    try:
        scout = LanDiscovery(Identity(1, ""), heard, listen_only=True)
    except OSError as exc:
        log.info("no LAN discovery on the connect screen: %s", exc)
        return None
    return scout.start()


class ConnectFrame(ttk.Frame):
    """Server and nickname fields, Connect/Cancel, a message line, a busy indicator."""

    def __init__(self, master: tk.Misc, *, server: str, nick: str,
                 on_connect: Callable[[str, str], None],
                 on_cancel: Callable[[], None] | None = None) -> None:
        super().__init__(master, padding=32)
        self._on_connect = on_connect
        self._on_cancel = on_cancel
        self.busy = False
        self._error_colour = "#c42b1c"
        self._muted = "#6b6b6b"
        self.server_var = tk.StringVar(self, value=server)
        self.nick_var = tk.StringVar(self, value=nick)
        self.error_var = tk.StringVar(self, value="")

        box = ttk.Frame(self)
        box.place(relx=0.5, rely=0.12, anchor="n")
        ttk.Label(box, text="OpenLChat", font=font(self, "TkDefaultFont", 22, "bold")).grid(
            row=0, column=0, columnspan=2, pady=(0, 4))
        ttk.Label(box, text="Chat directly with everyone on the server’s list.").grid(
            row=1, column=0, columnspan=2, pady=(0, 20))
        ttk.Label(box, text="Server").grid(row=2, column=0, sticky="w", padx=(0, 12), pady=6)
        # a combobox: the servers heard on this network (set_servers) are one click away
        self.server_entry = ttk.Combobox(box, textvariable=self.server_var, width=32)
        self.server_entry.grid(row=2, column=1, sticky="ew", pady=6)
        self.hint = ttk.Label(box, text=f"host or host:port (port {DEFAULT_PORT} if omitted)")
        self.hint.grid(row=3, column=1, sticky="w")
        ttk.Label(box, text="Nickname").grid(row=4, column=0, sticky="w", padx=(0, 12), pady=6)
        self.nick_entry = ttk.Entry(box, textvariable=self.nick_var, width=32)
        self.nick_entry.grid(row=4, column=1, sticky="ew", pady=6)
        buttons = ttk.Frame(box)
        buttons.grid(row=5, column=0, columnspan=2, sticky="ew", pady=(18, 8))
        buttons.columnconfigure(0, weight=1)
        self.button = ttk.Button(buttons, text="Connect", style="Accent.TButton",
                                 command=self.submit)
        self.button.grid(row=0, column=0, sticky="ew")
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        self.cancel_button.grid(row=0, column=1, sticky="e", padx=(8, 0))
        self.cancel_button.grid_remove()
        # the bar keeps its place while hidden (an empty frame of its height), so nothing moves
        bar_slot = ttk.Frame(box, height=8)
        bar_slot.grid(row=6, column=0, columnspan=2, sticky="ew")
        bar_slot.grid_propagate(False)
        bar_slot.columnconfigure(0, weight=1)
        self.progress = ttk.Progressbar(bar_slot, mode="indeterminate", length=200)
        self.bar_slot = bar_slot
        self.error_label = ttk.Label(box, textvariable=self.error_var, wraplength=380,
                                     foreground=self._error_colour, justify="left")
        self.error_label.grid(row=7, column=0, columnspan=2, sticky="nw", pady=(8, 0))
        box.rowconfigure(7, minsize=72)     # three lines of message, shown or not
        box.columnconfigure(1, weight=1)
        for entry in (self.server_entry, self.nick_entry):
            entry.bind("<Return>", lambda _e: self.submit())
            entry.bind("<KP_Enter>", lambda _e: self.submit())
        self.bind_all_escape()
        self._placeholder(self.server_entry, self.server_var)

    def bind_all_escape(self) -> None:
        self.winfo_toplevel().bind("<Escape>", lambda _e: self.cancel(), add="+")

    def _placeholder(self, entry: ttk.Entry, var: tk.StringVar) -> None:
        """Grey example text in an empty server field, gone on focus (not a value)."""
        self._shows_placeholder = False

        def show(_e: object = None) -> None:
            if not var.get() and entry.focus_get() is not entry:
                self._shows_placeholder = True
                var.set(SERVER_HINT)
                entry.configure(foreground=self._muted)

        def hide(_e: object = None) -> None:
            if self._shows_placeholder:
                self._shows_placeholder = False
                var.set("")
                entry.configure(foreground="")

        def typed(*_a: object) -> None:   # a value set from code replaces the example
            if self._shows_placeholder and var.get() != SERVER_HINT:
                self._shows_placeholder = False
                entry.configure(foreground="")

        var.trace_add("write", typed)
        entry.bind("<FocusIn>", hide, add="+")
        entry.bind("<FocusOut>", show, add="+")
        self._show_placeholder, self._hide_placeholder = show, hide

    def server_text(self) -> str:
        """What the user typed as the server ("" while the grey example shows)."""
        return "" if self._shows_placeholder else self.server_var.get()

    def recolour(self, colours: Colours) -> None:
        self._muted = colours.muted
        self._error_colour = colours.error
        self.hint.configure(foreground=colours.muted)
        if self._shows_placeholder:
            self.server_entry.configure(foreground=colours.muted)
        if not self.busy and self.error_label.cget("foreground") not in ("", colours.muted):
            self.error_label.configure(foreground=colours.error)

    def set_servers(self, found: list[str]) -> None:
        """Servers heard on this network (LAN discovery), offered in the server field."""
        self.server_entry.configure(values=found)
        if found and not self.server_text().strip():
            self.server_var.set(found[0])
        count = f"{len(found)} found on this network; " if found else ""
        self.hint.configure(text=f"{count}host or host:port (port {DEFAULT_PORT} if omitted)")

    def focus_first(self) -> None:
        target = self.nick_entry if self.server_text() and not self.nick_var.get() \
            else self.server_entry
        if self.server_text() and self.nick_var.get():
            target = self.button
        target.focus_set()
        if target is not self.server_entry:
            self._show_placeholder()

    def submit(self) -> None:
        if self.busy:
            return
        self._on_connect(self.server_text(), self.nick_var.get())

    def cancel(self) -> None:
        if self.busy and self._on_cancel is not None and self.winfo_ismapped():
            self._on_cancel()

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.busy = busy
        self.error_var.set(message)
        self.error_label.configure(foreground=self._muted if busy else self._error_colour)
        state = "disabled" if busy else "normal"
        for widget in (self.button, self.server_entry, self.nick_entry):
            widget.configure(state=state)
        if busy:
            self.cancel_button.grid()
            self.progress.grid(row=0, column=0, sticky="ew")
            self.progress.start(15)
            self.cancel_button.focus_set()
        else:
            self.cancel_button.grid_remove()
            self.progress.stop()
            self.progress.grid_remove()

    def set_error_colour(self, error: bool) -> None:
        """Red for an error, muted for news ("Disconnected.")."""
        self.error_label.configure(foreground=self._error_colour if error else self._muted)

    def show_error(self, message: str) -> None:
        self.set_busy(False)
        self.error_var.set(message)
        self.button.focus_set()
