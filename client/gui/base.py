"""What the window's parts share: the state every handler group reads, declared once.

``App`` (client/gui/app.py) builds it; the handler groups (chat, roster, files, keys, menu) are
mixins of ``App`` that read and change this state on the Tk thread only.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import ttk
from typing import TYPE_CHECKING, Any

from client.gui.attention import Attention
from client.gui.chat import ChatTab
from client.gui.connect import ConnectFrame
from client.gui.emoji_art import EmojiArt
from client.gui.files import FilesPanel
from client.gui.roster import Roster
from client.gui.theme import Colours

if TYPE_CHECKING:
    from client.engine import Engine
    from client.files import FileTransfers

log = logging.getLogger(__name__)

POLL_MS = 40                  # how often the queues are drained

EventHandlers = dict[type, Callable[[Any], None]]


class Outcome(enum.Enum):
    """What another thread hands the Tk thread through ``Window._results``."""
    CONNECTED = "connected"   # value: wiring.Client
    FAILED = "failed"         # value: the error in plain words
    CALL = "call"             # value: a function to run on the Tk thread


def quietly(fn: Callable[[], Any]) -> Any:
    """``fn()``, or None if it fails (logged): asking the engine must never break the window."""
    try:
        return fn()
    except Exception as exc:
        log.warning("%r failed: %r", fn, exc)
        return None


class Window:
    """The state of the window (attributes only; ``App.__init__`` and ``_build_main`` set them)."""

    root: tk.Tk
    settings: dict[str, Any]
    theme: str
    colours: Colours
    downloads: Path
    attention: Attention
    engine: Engine | None
    transfers: FileTransfers | None
    nickname: str | None
    server_label: str
    server_online: bool
    title_unread: int
    connect_frame: ConnectFrame
    main_frame: ttk.Frame | None
    notebook: ttk.Notebook
    panes: ttk.PanedWindow
    roster: Roster
    files: FilesPanel
    status: ttk.Label
    status_var: tk.StringVar
    tabs: dict[str | None, ChatTab]
    menus: list[tk.Menu]           # every plain Tk menu, coloured with the theme
    art: EmojiArt
    text_size: int
    _close_icon: Any
    _results: queue.Queue[tuple[Outcome, Any]]

    def on_tk_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the Tk thread: now if this is it, else at the next poll."""
        if threading.current_thread() is threading.main_thread():
            fn()
        else:
            self._results.put((Outcome.CALL, fn))
