"""The menu bar, the window-wide keyboard shortcuts, Settings, Help and About."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.gui.base import Window
from client.gui.dialogs import (
    ABOUT,
    MAX_SIZE,
    MIN_SIZE,
    Preferences,
    SettingsDialog,
    TextDialog,
    help_parts,
)
from client.gui.netcheck import NetcheckDialog
from client.gui.theme import colour_menu


class MenuAndKeys(Window):
    """OpenLChat / Chat / View / Help menus and shortcuts (a mixin of ``App``)."""

    def _build_menu(self) -> None:
        """The menu bar and the window-wide keys; chat items work once connected."""
        menubar = tk.Menu(self.root)
        app = tk.Menu(menubar, tearoff=False)
        self._connected_items: list[tuple[tk.Menu, str]] = []
        for label, keys, action in (
                ("Disconnect", "", self.disconnect),
                ("Change server or nickname…", "", self.change_server_or_nick)):
            app.add_command(label=label, accelerator=keys, command=self._connected_only(action))
            self._connected_items.append((app, label))
        app.add_separator()
        app.add_command(label="Settings…", accelerator="Ctrl+,", command=self.open_settings)
        app.add_separator()
        app.add_command(label="Quit", accelerator="Ctrl+Q", command=self.close)
        menubar.add_cascade(label="OpenLChat", menu=app, underline=0)

        chat = tk.Menu(menubar, tearoff=False)
        for label, keys, action in (
                ("Private chat with selected", "Enter (in list)",
                 lambda: self._with_selected(self.open_private)),
                ("Who is this?", "", lambda: self._with_selected(self.show_whois)),
                ("Send file…", "", self._send_file_current),
                ("Join channel…", "Ctrl+J", self.open_join_dialog),
                ("Network check…", "", lambda: NetcheckDialog(self)),
                ("Insert emoji…", "Ctrl+E", self._picker_current),
                ("Next tab", "Ctrl+Tab", lambda: self.cycle_tab(1)),
                ("Close tab", "Ctrl+W", self.close_tab),
                ("Go to the list of people", "Ctrl+R", lambda: self.roster.tree.focus_set())):
            chat.add_command(label=label, accelerator=keys, command=self._connected_only(action))
            self._connected_items.append((chat, label))
        menubar.add_cascade(label="Chat", menu=chat, underline=0)

        view = tk.Menu(menubar, tearoff=False)
        self.dark_var = tk.BooleanVar(self.root, value=self.theme == "dark")
        view.add_checkbutton(label="Dark theme", accelerator="Ctrl+Shift+D",
                             variable=self.dark_var,
                             command=lambda: self.set_theme(
                                 "dark" if self.dark_var.get() else "light"))
        view.add_command(label="Larger text", accelerator="Ctrl++",
                         command=lambda: self.set_text_size(self.text_size + 1))
        view.add_command(label="Smaller text", accelerator="Ctrl+-",
                         command=lambda: self.set_text_size(self.text_size - 1))
        menubar.add_cascade(label="View", menu=view, underline=0)

        helpmenu = tk.Menu(menubar, tearoff=False)
        helpmenu.add_command(label="Commands and shortcuts", accelerator="F1",
                             command=self.show_help)
        helpmenu.add_command(label="About OpenLChat", command=self.show_about)
        menubar.add_cascade(label="Help", menu=helpmenu, underline=0)

        self.root.configure(menu=menubar)
        self.menus = [menubar, app, chat, view, helpmenu]
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
                            ("<Control-Q>", self.close), ("<F1>", self.show_help),
                            ("<Control-comma>", self.open_settings),
                            ("<Control-plus>", lambda: self.set_text_size(self.text_size + 1)),
                            ("<Control-equal>", lambda: self.set_text_size(self.text_size + 1)),
                            ("<Control-minus>", lambda: self.set_text_size(self.text_size - 1))):
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
        for menu, label in self._connected_items:
            menu.entryconfigure(label, state=state)

    def _colour_menus(self) -> None:
        for menu in self.menus:
            colour_menu(menu, self.colours)
        if self.main_frame is not None:
            colour_menu(self.roster.menu, self.colours)

    def _picker_current(self) -> None:
        tab = self.current_tab()
        if tab is not None:
            tab.open_picker()

    # --- text size, settings, help -------------------------------------------------------------
    def set_text_size(self, size: int) -> None:
        self.text_size = min(MAX_SIZE, max(MIN_SIZE, size))
        for tab in self.tabs.values():
            tab.set_size(self.text_size)
        self.settings["font_size"] = self.text_size

    def preferences(self) -> Preferences:
        return Preferences(self.theme, self.text_size, self.attention.enabled, self.downloads)

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.root, self.preferences(), self.apply_preferences)
        self._theme_dialog(dialog.top)
        return dialog

    def apply_preferences(self, prefs: Preferences) -> None:
        """What Settings saved: applied at once and stored in settings.json."""
        if prefs.theme != self.theme:
            self.set_theme(prefs.theme)
        if prefs.text_size != self.text_size:
            self.set_text_size(prefs.text_size)
        self.attention.enabled = prefs.notifications
        self.settings["notifications"] = prefs.notifications
        if Path(prefs.downloads) != self.downloads:
            self.set_downloads(Path(prefs.downloads))
        self._save_settings()

    def show_help(self) -> TextDialog:
        from client.terminal import COMMANDS
        dialog = TextDialog(self.root, "OpenLChat help", self.colours, help_parts(COMMANDS))
        self._theme_dialog(dialog.top)
        return dialog

    def show_about(self) -> TextDialog:
        dialog = TextDialog(self.root, "About OpenLChat", self.colours,
                            [("OpenLChat\n", "h"), (ABOUT + "\n", "")], width=56, height=9)
        self._theme_dialog(dialog.top)
        return dialog

    def _theme_dialog(self, top: tk.Toplevel) -> None:
        top.configure(background=self.colours.background)
