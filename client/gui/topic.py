"""The topic bar above the messages: the conversation's name and its topic.

For a channel, double-clicking the topic turns it into an entry:
Enter sets the new topic (through ``/topic``, like typing it), Escape or leaving the entry
keeps the old one. For a private conversation it says whether the other person is away.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.gui.chat import printable
from client.gui.theme import Colours, font

NO_TOPIC = "No topic yet — double-click here to set one"


class TopicBar(ttk.Frame):
    def __init__(self, master: tk.Misc, colours: Colours, *,
                 on_set: Callable[[str, str], None]) -> None:
        super().__init__(master, padding=(2, 2, 2, 6))
        self._on_set = on_set
        self.channel: str | None = None   # the channel shown; None: not editable
        self.text = ""
        self.name_var = tk.StringVar(self, value="")
        self.topic_var = tk.StringVar(self, value="")
        self.name_label = ttk.Label(self, textvariable=self.name_var,
                                    font=font(self, "TkHeadingFont", 12, "bold"))
        self.name_label.grid(row=0, column=0, sticky="w", padx=(0, 10))
        self.topic_label = ttk.Label(self, textvariable=self.topic_var, anchor="w")
        self.topic_label.grid(row=0, column=1, sticky="ew")
        self.entry = ttk.Entry(self)
        self.columnconfigure(1, weight=1)
        self.colours = colours
        for widget in (self, self.name_label, self.topic_label):
            widget.bind("<Double-1>", lambda _e: self.edit())
        self.entry.bind("<Return>", self._commit)
        self.entry.bind("<KP_Enter>", self._commit)
        self.entry.bind("<Escape>", lambda _e: self._stop())
        self.entry.bind("<FocusOut>", lambda _e: self._stop())
        self.bind("<Configure>", self._wrap, add="+")

    def recolour(self, colours: Colours) -> None:
        self.colours = colours
        self._colour()

    def show(self, name: str, topic: str, setter: str = "", *, channel: str | None) -> None:
        """Show ``name`` and ``topic``; ``channel`` set: double-click edits that topic."""
        self._stop()
        self.channel, self.text = channel, topic
        self.name_var.set(printable(name))
        if topic:
            by = f"  (set by {printable(setter)})" if setter else ""
            self.topic_var.set(printable(topic) + by)
        else:
            self.topic_var.set(NO_TOPIC if channel is not None else "")
        self._colour()

    def _colour(self) -> None:
        muted = not self.text
        self.topic_label.configure(foreground=self.colours.muted if muted else "")

    def _wrap(self, _event: object) -> None:
        width = self.winfo_width() - self.name_label.winfo_width() - 24
        self.topic_label.configure(wraplength=max(width, 120))

    # --- editing -------------------------------------------------------------------------------
    @property
    def editing(self) -> bool:
        return bool(self.entry.winfo_manager())

    def edit(self) -> None:
        if self.channel is None or self.editing:
            return
        self.topic_label.grid_remove()
        self.entry.delete(0, "end")
        self.entry.insert(0, self.text)
        self.entry.grid(row=0, column=1, sticky="ew")
        self.entry.focus_set()
        self.entry.select_range(0, "end")

    def _commit(self, _event: object) -> str:
        channel, text = self.channel, self.entry.get().strip()
        self._stop()
        if channel is not None and text and text != self.text:
            self._on_set(channel, text)
        return "break"

    def _stop(self) -> None:
        if self.editing:
            self.entry.grid_remove()
            self.topic_label.grid()
