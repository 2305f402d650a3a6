"""The file dialogs, roomier on Linux: Tk's own X11 dialog opens small (long names cut off)
and lists hidden files; here it opens larger, hides dot-files (a button shows them) and starts in
the folder given (home or the last one used), never the folder the app was started from."""

from __future__ import annotations

import contextlib
import tkinter as tk
from pathlib import Path
from tkinter import filedialog

_X11_DIALOG = ".__tk_filedialog"     # the toplevel Tk's X11 dialog uses
X11_SIZE = "820x520"


def _prepare_x11(root: tk.Misc) -> str | None:
    """Hide dot-files and schedule a larger size for Tk's X11 dialog; the after() id."""
    if str(root.tk.call("tk", "windowingsystem")) != "x11":
        return None
    with contextlib.suppress(tk.TclError):   # loads the dialog's code (the option is bad)
        root.tk.call("tk_getOpenFile", "-no-such-option")
    with contextlib.suppress(tk.TclError):
        root.tk.call("set", "::tk::dialog::file::showHiddenBtn", "1")
        root.tk.call("set", "::tk::dialog::file::showHiddenVar", "0")

    def grow() -> None:
        with contextlib.suppress(tk.TclError):
            if int(root.tk.call("winfo", "exists", _X11_DIALOG)):
                root.tk.call("wm", "geometry", _X11_DIALOG, X11_SIZE)
    return root.after(60, grow)


def ask_open_files(root: tk.Misc, title: str, start: Path) -> list[Path]:
    """Files chosen to send ([] if cancelled)."""
    pending = _prepare_x11(root)
    try:
        names = filedialog.askopenfilenames(parent=root, title=title, initialdir=str(start))
    finally:
        if pending is not None:
            with contextlib.suppress(tk.TclError):
                root.after_cancel(pending)
    return [Path(n) for n in root.tk.splitlist(names)] if names else []


def ask_folder(root: tk.Misc, title: str, start: Path) -> Path | None:
    """A folder (the downloads folder), or None if cancelled."""
    pending = _prepare_x11(root)
    try:
        chosen = filedialog.askdirectory(parent=root, initialdir=str(start), title=title,
                                         mustexist=False)
    finally:
        if pending is not None:
            with contextlib.suppress(tk.TclError):
                root.after_cancel(pending)
    return Path(chosen) if chosen else None
