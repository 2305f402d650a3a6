"""The Tk face of the client: ``python -m client`` without ``--headless``.

Threads: Tk lives in the main thread only. Connecting (client/wiring.py; registration blocks on
TCP) runs in a short worker thread whose outcome comes back through ``self._results``; the
engine's own thread puts events on ``engine.events``. Both queues are drained by ``_poll``,
scheduled with ``root.after`` every POLL_MS with a cap per tick, so no other thread ever calls
into Tk (the engine's ``notify`` hook is left unused: polling 25 times a second is cheap and has
no race).

``App`` is the composition root: it builds the window and routes each engine event, by its
class, to the handler group that serves it: chat_handlers (tabs, messages, server state),
roster_handlers (the list of people), file_handlers (transfers), key_handlers (identity keys),
menu (menu bar, shortcuts). The widgets live in connect, chat, files, whois, attention, theme.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import re
import sys
import threading
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from tkinter import ttk
from typing import Any

from client import events as ev
from client import wiring
from client.config import (
    default_downloads,
    format_address,
    lan_default,
    load_json,
    save_json,
    settings_path,
)
from client.gui.attention import Attention, title_for
from client.gui.base import POLL_MS, EventHandlers, Outcome
from client.gui.chat import DEFAULT_SIZE
from client.gui.chat_handlers import ChatHandlers
from client.gui.command_line import CommandLine
from client.gui.connect import ConnectFrame, scout_servers
from client.gui.dialogs import MAX_SIZE, MIN_SIZE
from client.gui.emoji_art import EmojiArt
from client.gui.file_handlers import FileHandlers
from client.gui.files import FilesPanel
from client.gui.key_handlers import KeyHandlers
from client.gui.members import MemberRoster
from client.gui.menu import MenuAndKeys
from client.gui.roster_handlers import RosterHandlers
from client.gui.session_handlers import SessionHandlers
from client.gui.theme import apply_theme, normalise_theme

log = logging.getLogger(__name__)


ROSTER_WIDTH = 190            # pixels the list of people keeps at least...
ROSTER_MAX = 260              # ... and starts with at most
MAX_EVENTS_PER_TICK = 200     # so a flood of events never freezes the window
CLOSE_JOIN = 1.5              # seconds the window waits for QUIT to go out
_GEOMETRY = re.compile(r"^(\d{3,5})x(\d{3,5})([+-]-?\d{1,5})([+-]-?\d{1,5})$")


def _collect_tk_garbage() -> None:
    """Collect destroyed widgets now, on the main thread.

    Widgets and their StringVars sit in reference cycles; left to the cyclic GC, they may be
    freed in whatever thread happens to trigger it (the engine's), and ``Variable.__del__``
    then calls into Tk off the main thread (tkinter blocks up to a second there, then fails).
    """
    gc.collect()


class App(SessionHandlers, CommandLine, ChatHandlers, RosterHandlers, FileHandlers, KeyHandlers,
          MenuAndKeys):
    """The whole window: connect screen, then tabs + roster + files + status bar."""

    def __init__(self, root: tk.Tk | None = None, *, server: str | None = None,
                 nick: str | None = None, config_dir: Path | None = None,
                 engine_factory: wiring.EngineFactory | None = None,
                 connect_timeout: float = 5.0, attention: Attention | None = None) -> None:
        self.root = root if root is not None else tk.Tk()
        self.config_dir = config_dir
        self.settings_file = settings_path(config_dir)
        self.settings = load_json(self.settings_file)
        self.theme = normalise_theme(self.settings.get("theme"))
        self.colours = apply_theme(self.root, self.theme)
        self._factory = engine_factory
        saved_downloads = self.settings.get("downloads")
        self.downloads = Path(saved_downloads) if isinstance(saved_downloads, str) \
            and saved_downloads else default_downloads()
        self._connect_timeout = connect_timeout
        self.attention = attention or Attention()
        self.attention.enabled = self.settings.get("notifications", True) is not False
        size = self.settings.get("font_size")
        self.text_size = size if isinstance(size, int) and MIN_SIZE <= size <= MAX_SIZE \
            else DEFAULT_SIZE
        self.art = EmojiArt(self.root)
        self._close_icon = None
        self._dnd = None
        self._results = queue.Queue()
        self._lock = threading.Lock()
        self._closing = False
        self._attempt = 0
        self._closers: list[threading.Thread] = []  # engines leaving off the Tk thread
        self.closed = False
        self.engine = None
        self.transfers = None
        self.nickname = None
        self.server_label = ""
        self.server_online = True
        self.title_unread = 0
        self.tabs = {}
        self.main_frame = None
        self._init_channels()
        # one table: each event class -> the handler that shows it
        self._handlers: EventHandlers = {
            **self._chat_events(), **self._roster_events(), **self._file_events(),
            **self._key_events(), **self._channel_events(), ev.Fatal: self._on_fatal,
            ev.Notice: lambda e: self.room.view.add_system(e.text)}
        self.menus = []

        root_ = self.root
        root_.title(title_for(None, 0))
        root_.minsize(560, 380)
        root_.geometry(self._initial_geometry(str(self.settings.get("geometry", ""))))
        root_.protocol("WM_DELETE_WINDOW", self.close)
        root_.bind("<FocusIn>", self._focus_in, add="+")
        root_.bind("<Destroy>", self._destroyed, add="+")
        self.connect_frame = ConnectFrame(
            root_, server=server or str(self.settings.get("server", "")),
            nick=nick or str(self.settings.get("nick", "")), on_connect=self.connect,
            on_cancel=self.cancel_connect)
        self.connect_frame.recolour(self.colours)
        self.connect_frame.pack(fill="both", expand=True)
        self.connect_frame.focus_first()
        self._scout = scout_servers(lambda found: self.on_tk_thread(
            lambda: self.connect_frame.set_servers(found))) if lan_default() else None
        self._build_menu()
        self._poll_id: str | None = root_.after(POLL_MS, self._poll)

    def _initial_geometry(self, saved: str) -> str:
        """The saved size and place, unless it would open off screen (a monitor unplugged)."""
        match = _GEOMETRY.match(saved)
        if match is None:
            return "900x600"
        screen_w, screen_h = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
        width, height = min(int(match[1]), screen_w), min(int(match[2]), screen_h)
        # "+X+Y" from the top-left corner (X may be "-20": partly off the left edge)
        x = int(match[3][1:]) if match[3].startswith("+") else None
        y = int(match[4][1:]) if match[4].startswith("+") else None
        if x is None or y is None or not (-width // 2 < x < screen_w - 100
                                          and 0 <= y < screen_h - 100):
            return f"{width}x{height}"
        return f"{width}x{height}+{x}+{y}"

    def _destroyed(self, event: tk.Event) -> None:
        # the root went away without close() (e.g. a test tearing down): stop polling
        if event.widget is self.root and self._poll_id is not None:
            with contextlib.suppress(tk.TclError):
                self.root.after_cancel(self._poll_id)
            self._poll_id = None
            self.closed = True

    # --- the bridge from other threads ---------------------------------------------------------
    def _poll(self) -> None:
        self._poll_id = None
        if self.closed:
            return
        busy = False
        try:
            busy = self._drain()
        except Exception:   # a bug in one handler must not stop the chat
            log.exception("error while handling engine events")
        if not self.closed:
            self._poll_id = self.root.after(1 if busy else POLL_MS, self._poll)

    def _take_results(self) -> Iterator[tuple[Outcome, Any]]:
        """What other threads handed over since the last look, oldest first."""
        while True:
            try:
                yield self._results.get_nowait()
            except queue.Empty:
                return

    def _drain(self) -> bool:
        for kind, value in self._take_results():
            if kind is Outcome.CONNECTED:
                self._connected(value)
            elif kind is Outcome.FAILED:
                self.connect_frame.show_error(value)
                self.connect_frame.set_error_colour(True)
            else:
                value()
        engine = self.engine
        if engine is None:
            return False
        for _ in range(MAX_EVENTS_PER_TICK):
            try:
                event = engine.events.get_nowait()
            except queue.Empty:
                return False
            try:
                self.handle(event)
            except Exception:   # one bad event (or our bug) is logged, the rest still shown
                log.exception("error while showing %r", event)
            if self.engine is not engine:   # Fatal: back to the connect screen
                return False
        return True

    def handle(self, event: object) -> None:
        """Show one engine event (also used by tools/screenshots.py to feed the widgets)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            log.debug("ignoring unknown event %r", event)
            return
        handler(event)

    def _connected(self, client: wiring.Client) -> None:
        engine = self.engine = client.engine
        self.transfers = client.transfers
        self.nickname = engine.nickname or self.settings.get("nick")
        self.server_label = format_address(engine.server) if engine.server else "this network"
        self.server_online = True
        self._save_settings()
        self.connect_frame.set_busy(False)
        self.connect_frame.pack_forget()
        self._build_main()
        try:
            others = engine.roster()
        except Exception:
            others = []
        self.roster.set_all(self.nickname or "", others)
        self._show_verified(others)
        self.room.view.add_system(f"You are chatting as {self.nickname} on "
                                  f"{self.server_label}.")
        self._update_status()
        self._update_title()
        log.info("connected to %s as %s", self.server_label, self.nickname)

    # --- the main window -----------------------------------------------------------------------
    def _build_main(self) -> None:
        root = self.root
        main = ttk.Frame(root, padding=(8, 8, 8, 0))
        self.main_frame = main
        panes = ttk.PanedWindow(main, orient="horizontal")
        self.notebook = ttk.Notebook(panes)
        self.notebook.bind("<<NotebookTabChanged>>", self._tab_changed)
        self._bind_tab_closing()
        self.roster = MemberRoster(panes, on_open=self.open_private,
                                   on_whois=self.show_whois, on_send_file=self.send_file)
        panes.add(self.notebook, weight=4)
        panes.add(self.roster, weight=1)
        panes.pack(fill="both", expand=True)
        self._roster_placed = False
        panes.bind("<Configure>", self._keep_roster, add="+")
        self.panes = panes
        self.files = FilesPanel(main, on_accept=self._accept_file, on_decline=self._decline_file,
                                on_cancel=self._cancel_file, on_change=self._files_changed)
        self.status_var = tk.StringVar(root, value="")
        self.status = ttk.Label(root, textvariable=self.status_var, style="Status.TLabel",
                                anchor="w")
        self.status.pack(side="bottom", fill="x")
        ttk.Separator(root, orient="horizontal").pack(side="bottom", fill="x")
        main.pack(fill="both", expand=True)
        self._drop_target(main)
        self.tabs = {}
        room = self._new_tab(None)
        self.notebook.select(room)
        self._chat_menu_state("normal")
        self._colour_menus()
        self._build_channels()
        room.input.text.focus_set()

    def _keep_roster(self, _event: object = None) -> None:
        """The list of people stays visible in a narrow window (the tabs' wide bottom row
        would otherwise push it out of sight)."""
        width = self.panes.winfo_width()
        last = len(self.panes.panes()) - 2   # the sash left of the roster (the last pane)
        try:
            sash = int(self.panes.sashpos(last))
        except (tk.TclError, ValueError):
            return
        if width <= 2 * ROSTER_WIDTH:
            return
        if not self._roster_placed:   # first layout: a list about as wide as its names
            self._roster_placed = True
            self.panes.sashpos(last, width - min(ROSTER_MAX, max(ROSTER_WIDTH, width // 5)))
        elif width - sash < ROSTER_WIDTH:
            self.panes.sashpos(last, width - ROSTER_WIDTH)

    def _teardown_main(self) -> None:
        if self.main_frame is not None:
            for widget in (self.main_frame, self.status):
                widget.destroy()
            for child in self.root.pack_slaves():
                if isinstance(child, ttk.Separator):
                    child.destroy()
            self._chat_menu_state("disabled")
            self.main_frame = None
            self.tabs = {}
            _collect_tk_garbage()

    def set_theme(self, name: str) -> None:
        self.theme = normalise_theme(name)
        self.colours = apply_theme(self.root, self.theme)
        self.connect_frame.recolour(self.colours)
        for tab in self.tabs.values():
            tab.recolour(self.colours)
        self._recolour_tab_icons()
        self._recolour_channels()
        self._colour_menus()
        self.dark_var.set(self.theme == "dark")
        if self.main_frame is not None:
            self._update_status()
        self.settings["theme"] = self.theme

    def toggle_theme(self) -> None:
        self.set_theme("light" if self.theme == "dark" else "dark")

    # --- leaving -------------------------------------------------------------------------------
    def _save_settings(self) -> None:
        try:
            if self.root.winfo_exists() and self.root.state() == "normal":
                self.settings["geometry"] = self.root.geometry()
        except tk.TclError:
            pass
        self.settings["theme"] = self.theme
        try:
            save_json(self.settings_file, self.settings)
        except OSError as exc:
            log.warning("cannot save settings to %s: %s", self.settings_file, exc)

    def close(self) -> None:
        """Window closed: QUIT (off the main thread, short join), save settings, destroy."""
        if self.closed:
            return
        self.closed = True
        with self._lock:
            self._closing = True
        if self._scout is not None:
            self._scout.close()
        self._save_settings()
        engines = [self.engine] if self.engine is not None else []
        self.engine = None
        # a connect worker may have finished after our last poll: its engine must QUIT too
        engines += [value.engine for kind, value in self._take_results()
                    if kind is Outcome.CONNECTED]
        if engines:
            def close_all() -> None:
                for engine in engines:
                    wiring.close_quietly(engine)

            closer = threading.Thread(target=close_all, name="gui-close", daemon=True)
            closer.start()
            closer.join(CLOSE_JOIN)
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
            self._poll_id = None
        with contextlib.suppress(tk.TclError):
            self.root.destroy()
        _collect_tk_garbage()


def main(server: str | tuple[str, int] | None = None, nick: str | None = None,
         config_dir: Path | None = None) -> int:
    """Open the window; with both ``server`` and ``nick`` given, connect at once.

    ``server`` is ``HOST[:PORT]`` text, or the (host, port) pair client/__main__.py parsed.
    """
    if isinstance(server, tuple):
        server = format_address(server)
    if sys.platform == "win32":
        # crisp text on high-DPI screens instead of a blurry bitmap-scaled window
        with contextlib.suppress(Exception):
            import ctypes
            ctypes.windll.shcore.SetProcessDpiAwareness(1)  # type: ignore[attr-defined]
    try:
        root = tk.Tk(className="OpenLChat")
    except tk.TclError as exc:
        log.error("cannot open a window (%s); try: python -m client --headless", exc)
        return 2
    app = App(root, server=server, nick=nick, config_dir=config_dir)
    if server and nick:
        app.connect(server, nick)
    try:
        root.mainloop()
    except KeyboardInterrupt:   # Ctrl+C in the console that started us: leave properly
        log.info("interrupted")
    app.close()
    return 0
