"""The menu bar and the window-wide keyboard shortcuts."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from typing import Any

from client.gui.base import Window


class MenuAndKeys(Window):
    """The Chat menu and shortcuts (a mixin of ``App``)."""

    def _build_menu(self) -> None:
        """The menu bar and the window-wide keys; chat items work once connected."""
        menubar = tk.Menu(self.root)
        chat = tk.Menu(menubar, tearoff=False)
        chat_items = (
            ("Private chat with selected", "Enter (in list)",
             lambda: self._with_selected(self.open_private)),
            ("Who is this?", "", lambda: self._with_selected(self.show_whois)),
            ("Send file…", "", self._send_file_current),
            ("Join channel…", "Ctrl+J", self.open_join_dialog),
            ("Next tab", "Ctrl+Tab", lambda: self.cycle_tab(1)),
            ("Close tab", "Ctrl+W", self.close_tab),
            ("Go to the list of people", "Ctrl+R", lambda: self.roster.tree.focus_set()),
        )
        for label, keys, action in chat_items:
            chat.add_command(label=label, accelerator=keys, command=self._connected_only(action))
        self._chat_items = [label for label, _k, _a in chat_items]
        chat.add_separator()
        self.dark_var = tk.BooleanVar(self.root, value=self.theme == "dark")
        chat.add_checkbutton(label="Dark theme", accelerator="Ctrl+Shift+D",
                             variable=self.dark_var,
                             command=lambda: self.set_theme(
                                 "dark" if self.dark_var.get() else "light"))
        chat.add_command(label="Downloads folder…", command=self.choose_downloads)
        chat.add_separator()
        chat.add_command(label="Quit", accelerator="Ctrl+Q", command=self.close)
        menubar.add_cascade(label="Chat", menu=chat, underline=0)
        self.root.configure(menu=menubar)
        self.menus = (menubar, chat)
        self._colour_menus()
        self._chat_menu_state("disabled")
        for seq, action in (("<Control-w>", self.close_tab), ("<Control-W>", self.close_tab),
                            ("<Control-Tab>", lambda: self.cycle_tab(1)),
                            ("<Control-Shift-Tab>", lambda: self.cycle_tab(-1)),
                            ("<Control-ISO_Left_Tab>", lambda: self.cycle_tab(-1)),
                            ("<Control-r>", lambda: self.roster.tree.focus_set()),
                            ("<Control-R>", lambda: self.roster.tree.focus_set())):
            self.root.bind(seq, self._key(self._connected_only(action)))
        for seq, action in (("<Control-D>", self.toggle_theme), ("<Control-q>", self.close),
                            ("<Control-Q>", self.close)):
            self.root.bind(seq, self._key(action))

    @staticmethod
    def _key(action: Callable[[], Any]) -> Callable[[object], str]:
        def run(_event: object) -> str:
            action()
            return "break"
        return run

    def _connected_only(self, action: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            if self.main_frame is not None:
                action()
        return run

    def _chat_menu_state(self, state: str) -> None:
        for label in self._chat_items:
            self.menus[1].entryconfigure(label, state=state)

    def _colour_menus(self) -> None:
        # plain Tk menus (X11) do not follow sv-ttk; Windows draws its own and ignores this
        c = self.colours
        for menu in self.menus:
            menu.configure(background=c.background, foreground=c.foreground,
                           activebackground=c.select, activeforeground=c.foreground,
                           selectcolor=c.foreground, borderwidth=0)
