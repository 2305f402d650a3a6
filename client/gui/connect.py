"""The connect screen: server address and nickname, errors in plain words (client/wording.py)."""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.config import DEFAULT_PORT, format_address
from client.gui.theme import font
from client.reach.lan import Identity, LanDiscovery
from client.reach.lancache import LanEvent

log = logging.getLogger(__name__)


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
    """Server and nickname fields, a Connect button, an error line, a busy indicator."""

    def __init__(self, master: tk.Misc, *, server: str, nick: str,
                 on_connect: Callable[[str, str], None]) -> None:
        super().__init__(master, padding=32)
        self._on_connect = on_connect
        self.server_var = tk.StringVar(self, value=server or f"127.0.0.1:{DEFAULT_PORT}")
        self.nick_var = tk.StringVar(self, value=nick)
        self.error_var = tk.StringVar(self, value="")

        box = ttk.Frame(self)
        box.place(relx=0.5, rely=0.45, anchor="center")
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
        self.button = ttk.Button(box, text="Connect", style="Accent.TButton",
                                 command=self.submit)
        self.button.grid(row=5, column=0, columnspan=2, sticky="ew", pady=(18, 8))
        self.progress = ttk.Progressbar(box, mode="indeterminate", length=200)
        self.progress.grid(row=6, column=0, columnspan=2, sticky="ew")
        self.progress.grid_remove()
        self.error_label = ttk.Label(box, textvariable=self.error_var, wraplength=380,
                                     foreground="#c42b1c", justify="left")
        self.error_label.grid(row=7, column=0, columnspan=2, sticky="w", pady=(8, 0))
        box.columnconfigure(1, weight=1)
        for entry in (self.server_entry, self.nick_entry):
            entry.bind("<Return>", lambda _e: self.submit())
            entry.bind("<KP_Enter>", lambda _e: self.submit())

    def set_servers(self, found: list[str]) -> None:
        """Servers heard on this network (LAN discovery), offered in the server field."""
        self.server_entry.configure(values=found)
        if found and not self.server_var.get().strip():
            self.server_var.set(found[0])
        count = f"{len(found)} found on this network; " if found else ""
        self.hint.configure(text=f"{count}host or host:port (port {DEFAULT_PORT} if omitted)")

    def focus_first(self) -> None:
        target = self.nick_entry if self.server_var.get() and not self.nick_var.get() \
            else self.server_entry
        if self.server_var.get() and self.nick_var.get():
            target = self.button
        target.focus_set()

    def submit(self) -> None:
        if str(self.button.cget("state")) == "disabled":
            return
        self._on_connect(self.server_var.get(), self.nick_var.get())

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.error_var.set(message)
        self.error_label.configure(foreground="" if busy else "#c42b1c")
        state = "disabled" if busy else "normal"
        for widget in (self.button, self.server_entry, self.nick_entry):
            widget.configure(state=state)
        if busy:
            self.progress.grid()
            self.progress.start(15)
        else:
            self.progress.stop()
            self.progress.grid_remove()

    def show_error(self, message: str) -> None:
        self.set_busy(False)
        self.error_var.set(message)
        self.button.focus_set()
