"""The connect screen: server address and nickname, errors in plain words.

``parse_server`` and ``describe_error`` are pure so they are tested without a display.
"""

from __future__ import annotations

import re
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.gui_theme import font

DEFAULT_PORT = 7700   # the server's default (README, server options)

# Error codes the directory answers with (``ERROR CODE text``) -> what a person should read.
_PLAIN_WORDS = {
    "NICK_TAKEN": "The nickname “{nick}” is already taken on this server. Please choose another.",
    "NICK_IN_USE": "The nickname “{nick}” is already taken on this server. Please choose another.",
    "BAD_NICK": "“{nick}” cannot be used as a nickname: {text}",
    "SERVER_FULL": "The server is full right now. Please try again later.",
}


def parse_server(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` too) -> (host, port); ValueError in plain words."""
    text = text.strip()
    if not text:
        raise ValueError("Please enter the server address, for example 192.168.1.10 or "
                         f"chat.example.org:{default_port}.")
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"“{text}” is not a valid address: a “]” is missing.")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"“{text}” is not a valid address.")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"“{text}” is not a valid server address.")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"“{port_text}” is not a port number (1–65535).")
    return host, int(port_text)


def check_nickname(nick: str) -> str:
    """A first, local check; the server has the final word."""
    nick = nick.strip()
    if not nick:
        raise ValueError("Please choose a nickname.")
    if any(c.isspace() for c in nick):
        raise ValueError("A nickname cannot contain spaces.")
    if len(nick) > 24:
        raise ValueError("A nickname can be at most 24 characters long.")
    return nick


def _reason(text: str) -> str:
    """``cannot reach h:p: [Errno 111] Connection refused`` -> ``connection refused``."""
    text = re.sub(r"\[(Errno|WinError) -?\d+\]\s*", "", text.rsplit(": ", 1)[-1]).strip()
    return text[:1].lower() + text[1:].rstrip(".")


def describe_error(exc: BaseException, nick: str, server: str) -> str:
    """What went wrong when connecting, for a person rather than a log file."""
    code = getattr(exc, "code", None)
    text = str(getattr(exc, "text", "") or exc).strip()
    if code in _PLAIN_WORDS:
        return _PLAIN_WORDS[code].format(nick=nick, text=text)
    kind = type(exc).__name__
    if kind == "ServerUnreachable" or isinstance(exc, OSError | TimeoutError):
        why = _reason(text)
        return (f"Cannot reach the server at {server}{': ' + why if why else ''}. "
                "Check the address and that the server is running.")
    if code and "NICK" in str(code).upper():
        return f"The server refused the nickname “{nick}”: {text}"
    if code:
        return f"The server refused to let us in: {text or code}"
    return f"Could not connect: {text or kind}"


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
        self.server_entry = ttk.Entry(box, textvariable=self.server_var, width=32)
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
