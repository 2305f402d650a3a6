"""The "Join channel…" dialog: a name (checked as typed, with client/chat/names.py's words)
and the channels we know of to pick from. Join runs ``/join`` through the command table."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.chat import names
from client.chat.channels import ChannelInfo
from client.gui.chat import printable
from client.gui.theme import Colours
from models.errors import ProtocolError


def check_channel(raw: str) -> tuple[str | None, str]:
    """(display name, "") for a valid name, else (None, why) in plain words."""
    try:
        return names.display_form(raw.strip()), ""
    except ProtocolError as exc:
        return None, exc.text


class JoinDialog:
    def __init__(self, master: tk.Misc, colours: Colours, known: list[ChannelInfo],
                 on_join: Callable[[str], None]) -> None:
        self._on_join = on_join
        top = self.top = tk.Toplevel(master)
        top.title("Join channel")
        top.transient(master.winfo_toplevel())
        top.configure(background=colours.background)
        frame = ttk.Frame(top, padding=14)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text="Channel name (starts with #; created if nobody has it):").grid(
            row=0, column=0, columnspan=2, sticky="w")
        self.name_var = tk.StringVar(top, value="#")
        self.entry = ttk.Entry(frame, textvariable=self.name_var, width=34)
        self.entry.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(4, 2))
        self.error_var = tk.StringVar(top, value="")
        ttk.Label(frame, textvariable=self.error_var, foreground=colours.error).grid(
            row=2, column=0, columnspan=2, sticky="w")
        self.known = [c for c in known if not c.joined]
        if self.known:
            ttk.Label(frame, text="Channels others are in:").grid(row=3, column=0, columnspan=2,
                                                                   sticky="w", pady=(8, 2))
            self.listbox = tk.Listbox(frame, height=min(8, len(self.known)), activestyle="none",
                                      background=colours.background,
                                      foreground=colours.foreground,
                                      selectbackground=colours.select, highlightthickness=0)
            for info in self.known:
                topic = f" — {info.topic}" if info.topic else ""
                self.listbox.insert("end", printable(f"{info.name} ({info.members}){topic}"))
            self.listbox.grid(row=4, column=0, columnspan=2, sticky="nsew")
            self.listbox.bind("<<ListboxSelect>>", self._picked)
            self.listbox.bind("<Double-1>", lambda _e: self.join())
        buttons = ttk.Frame(frame, padding=(0, 10, 0, 0))
        buttons.grid(row=5, column=0, columnspan=2, sticky="e")
        self.join_button = ttk.Button(buttons, text="Join", style="Accent.TButton",
                                      command=self.join)
        self.join_button.pack(side="right")
        ttk.Button(buttons, text="Cancel", command=top.destroy).pack(side="right", padx=(0, 6))
        frame.columnconfigure(0, weight=1)
        self.name_var.trace_add("write", lambda *_a: self._check(quiet=True))
        top.bind("<Return>", lambda _e: self.join())
        top.bind("<KP_Enter>", lambda _e: self.join())
        top.bind("<Escape>", lambda _e: top.destroy())
        self.entry.focus_set()
        self.entry.icursor("end")
        self._check(quiet=True)

    def _picked(self, _event: object) -> None:
        sel = self.listbox.curselection()
        if sel:
            self.name_var.set(self.known[sel[0]].name)

    def _check(self, *, quiet: bool) -> str | None:
        """The name if valid; the reason shown when not (``quiet``: not for a bare "#")."""
        name, why = check_channel(self.name_var.get())
        raw = self.name_var.get().strip()
        self.error_var.set("" if name or (quiet and raw in ("", "#")) else why)
        self.join_button.configure(state="normal" if name else "disabled")
        return name

    def join(self) -> None:
        name = self._check(quiet=False)
        if name is None:
            return
        self.top.destroy()
        self._on_join(name)
