"""Settings, Help and About: small windows over the main one, Escape closes each.

``SettingsDialog`` edits a ``Preferences`` (theme, text size, notifications, downloads folder)
and hands the result to ``on_save``; the App applies and stores it (settings.json).
"""

from __future__ import annotations

import contextlib
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk

from client.gui.filepick import ask_folder
from client.gui.theme import Colours, font

MIN_SIZE, MAX_SIZE = 8, 20     # text sizes offered (points)

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Enter", "send"),
    ("Shift+Enter", "new line in a message"),
    ("Up / Down", "earlier messages you typed"),
    ("Page Up / Page Down", "scroll the conversation"),
    ("Ctrl+E", "emoji picker"),
    ("Ctrl+Tab / Ctrl+Shift+Tab", "next / previous tab"),
    ("Ctrl+W, middle click, ×", "close a private tab"),
    ("Ctrl+R", "go to the list of people (Enter opens a private chat)"),
    ("Shift+F10 / Menu key", "the menu of the selected person"),
    ("Ctrl+Plus / Ctrl+Minus", "larger / smaller text"),
    ("Ctrl+Shift+D", "dark or light theme"),
    ("Ctrl+,", "settings"),
    ("F1", "this help"),
    ("Escape", "cancel connecting; close a dialog"),
    ("Ctrl+Q", "quit"),
)
COMMANDS: tuple[tuple[str, str], ...] = (
    ("/msg NICK text", "a private message to NICK"),
    ("/whois NICK", "who is NICK? (their key fingerprint)"),
    ("/help", "this help"),
    ("//text", "send text that starts with /"),
)
ABOUT = ("OpenLChat — an IRC-like chat: a tiny directory server, messages straight from person "
         "to person, end-to-end encrypted.\n\n"
         "Emoji pictures: Twemoji by Twitter, Inc. and contributors, CC-BY 4.0 "
         "(creativecommons.org/licenses/by/4.0). Themes: Sun Valley ttk theme (MIT).")


@dataclass(frozen=True)
class Preferences:
    theme: str
    text_size: int
    notifications: bool
    downloads: Path


class _Dialog:
    """A window over the app's: transient, Escape closes it, focus goes to it."""

    def __init__(self, master: tk.Misc, title: str) -> None:
        top = self.top = tk.Toplevel(master)
        top.title(title)
        top.transient(master.winfo_toplevel())
        top.bind("<Escape>", lambda _e: self.close())
        self.frame = ttk.Frame(top, padding=16)
        self.frame.pack(fill="both", expand=True)

    def place_over(self, master: tk.Misc) -> None:
        top = self.top
        top.update_idletasks()
        x = master.winfo_rootx() + max(0, (master.winfo_width() - top.winfo_reqwidth()) // 2)
        y = master.winfo_rooty() + max(0, (master.winfo_height() - top.winfo_reqheight()) // 3)
        top.geometry(f"+{x}+{y}")
        top.after_idle(self._focus)

    def _focus(self) -> None:
        with contextlib.suppress(tk.TclError):
            self.top.focus_force()

    def close(self) -> None:
        with contextlib.suppress(tk.TclError):
            self.top.destroy()


class SettingsDialog(_Dialog):
    def __init__(self, master: tk.Misc, current: Preferences,
                 on_save: Callable[[Preferences], None]) -> None:
        super().__init__(master, "Settings")
        self._on_save = on_save
        top, f = self.top, self.frame
        top.resizable(False, False)
        self.theme_var = tk.StringVar(top, value=current.theme)
        self.size_var = tk.IntVar(top, value=current.text_size)
        self.notify_var = tk.BooleanVar(top, value=current.notifications)
        self.downloads_var = tk.StringVar(top, value=str(current.downloads))
        heading = font(top, "TkHeadingFont", 11, "bold")
        ttk.Label(f, text="Appearance", font=heading).grid(row=0, column=0, columnspan=3,
                                                           sticky="w")
        ttk.Label(f, text="Theme").grid(row=1, column=0, sticky="w", padx=(0, 12), pady=4)
        themes = ttk.Frame(f)
        themes.grid(row=1, column=1, columnspan=2, sticky="w")
        for i, (value, label) in enumerate((("light", "Light"), ("dark", "Dark"))):
            ttk.Radiobutton(themes, text=label, value=value, variable=self.theme_var).grid(
                row=0, column=i, padx=(0, 12))
        ttk.Label(f, text="Text size").grid(row=2, column=0, sticky="w", padx=(0, 12), pady=4)
        self.size_box = ttk.Spinbox(f, from_=MIN_SIZE, to=MAX_SIZE, width=5,
                                    textvariable=self.size_var)
        self.size_box.grid(row=2, column=1, sticky="w")
        ttk.Label(f, text="Notifications", font=heading).grid(row=3, column=0, columnspan=3,
                                                              sticky="w", pady=(14, 0))
        ttk.Checkbutton(f, variable=self.notify_var,
                        text="Notify me of private messages, files and mentions\n"
                             "while the window is in the background").grid(
            row=4, column=0, columnspan=3, sticky="w", pady=4)
        ttk.Label(f, text="Files", font=heading).grid(row=5, column=0, columnspan=3,
                                                      sticky="w", pady=(14, 0))
        ttk.Label(f, text="Save received files in").grid(row=6, column=0, columnspan=3,
                                                         sticky="w", pady=(4, 2))
        ttk.Entry(f, textvariable=self.downloads_var, width=44).grid(
            row=7, column=0, columnspan=2, sticky="ew")
        ttk.Button(f, text="Change…", command=self._browse).grid(row=7, column=2, padx=(6, 0))
        buttons = ttk.Frame(f)
        buttons.grid(row=8, column=0, columnspan=3, sticky="e", pady=(18, 0))
        ttk.Button(buttons, text="Cancel", command=self.close).grid(row=0, column=0)
        self.save_button = ttk.Button(buttons, text="Save", style="Accent.TButton",
                                      command=self.save)
        self.save_button.grid(row=0, column=1, padx=(8, 0))
        top.bind("<Return>", lambda _e: self.save())
        self.place_over(master)

    def _browse(self) -> None:
        start = Path(self.downloads_var.get()).expanduser()
        chosen = ask_folder(self.top, "Where received files are saved",
                            start if start.is_dir() else Path.home())
        if chosen is not None:
            self.downloads_var.set(str(chosen))

    def values(self) -> Preferences:
        try:
            size = int(self.size_var.get())
        except (tk.TclError, ValueError):
            size = 11
        folder = self.downloads_var.get().strip()
        return Preferences(self.theme_var.get(), min(MAX_SIZE, max(MIN_SIZE, size)),
                           bool(self.notify_var.get()),
                           Path(folder).expanduser() if folder else Path.home())

    def save(self) -> None:
        prefs = self.values()
        self.close()
        self._on_save(prefs)


class TextDialog(_Dialog):
    """Help and About: read-only text with headings, selectable, in the theme's colours."""

    def __init__(self, master: tk.Misc, title: str, colours: Colours,
                 parts: list[tuple[str, str]], *, width: int = 64, height: int = 24) -> None:
        super().__init__(master, title)
        family = font(self.top, "TkTextFont")[0]
        text = self.text = tk.Text(self.frame, wrap="word", width=width, height=height,
                                   borderwidth=0, highlightthickness=0, padx=8, pady=8,
                                   background=colours.background,
                                   foreground=colours.foreground, font=(family, 11),
                                   tabs=("230",), spacing1=2, spacing3=2)
        text.tag_configure("h", font=(family, 13, "bold"), spacing1=10, spacing3=4)
        text.tag_configure("key", font=(family, 11, "bold"))
        for content, tag in parts:
            text.insert("end", content, tag)
        text.configure(state="disabled")
        text.grid(row=0, column=0, sticky="nsew")
        scroll = ttk.Scrollbar(self.frame, orient="vertical", command=text.yview)
        text.configure(yscrollcommand=scroll.set)
        scroll.grid(row=0, column=1, sticky="ns")
        close = ttk.Button(self.frame, text="Close", command=self.close)
        close.grid(row=1, column=0, columnspan=2, sticky="e", pady=(10, 0))
        self.frame.rowconfigure(0, weight=1)
        self.frame.columnconfigure(0, weight=1)
        self.place_over(master)

    def content(self) -> str:
        return self.text.get("1.0", "end-1c")


def help_parts(terminal_commands: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Help's text: shortcuts, commands in the window, the terminal client's commands."""
    parts_list: list[tuple[str, str]] = [("Keyboard shortcuts\n", "h")]
    for keys, what in SHORTCUTS:
        parts_list += [(keys, "key"), (f"\t{what}\n", "")]
    parts_list.append(("Typed in the message line\n", "h"))
    for command, what in COMMANDS:
        parts_list += [(command, "key"), (f"\t{what}\n", "")]
    parts_list += [("Files\n", "h"),
                   ("Send a file with “Send file…” in a private tab, the list’s menu, or drag "
                    "files onto the window. Received files go to the folder in Settings; "
                    "click “Open” or “Show in folder” under the message that says so.\n", ""),
                   ("Safety\n", "h"),
                   ("“Who is this?” (right-click a name) shows a person’s key fingerprint. "
                    "Compare it aloud; if it matches, mark it as verified. A red ⚠ means their "
                    "key changed since you last saw them.\n", ""),
                   ("Terminal client (python -m client --headless)\n", "h")]
    for command, what in terminal_commands:
        parts_list += [(command, "key"), (f"\t{what}\n", "")]
    return parts_list
