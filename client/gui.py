"""The Tk face of the client: ``python -m client`` without ``--headless``.

Threads: Tk lives in the main thread only. Connecting (``Engine.start()`` blocks on TCP) runs in
a short worker thread whose outcome comes back through ``self._results``; the engine's own
thread puts events on ``engine.events``. Both queues are drained by ``_poll``, scheduled with
``root.after`` every POLL_MS with a cap per tick, so no other thread ever calls into Tk (the
engine's ``notify`` hook is left unused: polling 25 times a second is cheap and has no race).

The widgets live in small modules: gui_connect (connect screen), gui_chat (message view, input,
tabs, roster), gui_files (transfers), gui_attention (title, notify-send, taskbar flash),
gui_theme (sv-ttk light/dark, nickname colours).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import re
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterable
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any

from client import events as ev
from client.config import load_json, save_json, settings_path
from client.gui_attention import Attention, title_for
from client.gui_chat import ChatTab, Roster
from client.gui_connect import ConnectFrame, check_nickname, describe_error, parse_server
from client.gui_files import FilesPanel, human_size
from client.gui_theme import apply_theme, font, normalise_theme

log = logging.getLogger(__name__)

POLL_MS = 40                  # how often the queues are drained
WHOIS_FETCH_S = 3.0           # "Who is this?" waits this long for a handshake to bring the key
MAX_EVENTS_PER_TICK = 200     # so a flood of events never freezes the window
CLOSE_JOIN = 1.5              # seconds the window waits for QUIT to go out
_GEOMETRY = re.compile(r"^(\d{3,5})x(\d{3,5})([+-]-?\d{1,5})([+-]-?\d{1,5})$")

EngineFactory = Callable[..., Any]


def _default_engine_factory(*args: Any, **kwargs: Any) -> Any:
    from client.engine import Engine  # imported late: the GUI module loads without it
    return Engine(*args, **kwargs)


def default_downloads() -> Path:
    import platformdirs
    return Path(platformdirs.user_downloads_dir()) / "OpenLChat"


def plug_in_files(engine: Any, downloads: Path) -> bool:
    """Give a started engine its file-transfer manager (client/files.py) if it has none.

    Runs in the connect worker (no Tk). Steps aside when the engine wires one itself. The
    listener gets the engine's UDP port number when free (files.py's convention).
    """
    if getattr(engine, "files", False) is not None:
        return False
    try:
        engine.attach_files(downloads)
    except Exception as exc:   # chat works without files; say so once
        log.warning("file transfer unavailable: %r", exc)
        return False
    return True


def _collect_tk_garbage() -> None:
    """Collect destroyed widgets now, on the main thread.

    Widgets and their StringVars sit in reference cycles; left to the cyclic GC, they may be
    freed in whatever thread happens to trigger it (the engine's), and ``Variable.__del__``
    then calls into Tk off the main thread (tkinter blocks up to a second there, then fails).
    """
    gc.collect()


class App:
    """The whole window: connect screen, then tabs + roster + files + status bar."""

    def __init__(self, root: tk.Tk | None = None, *, server: str | None = None,
                 nick: str | None = None, config_dir: Path | None = None,
                 engine_factory: EngineFactory | None = None, connect_timeout: float = 5.0,
                 attention: Attention | None = None) -> None:
        self.root = root if root is not None else tk.Tk()
        self.config_dir = config_dir
        self.settings_file = settings_path(config_dir)
        self.settings: dict[str, Any] = load_json(self.settings_file)
        self.theme = normalise_theme(self.settings.get("theme"))
        self.colours = apply_theme(self.root, self.theme)
        self._factory = engine_factory or _default_engine_factory
        saved_downloads = self.settings.get("downloads")
        self.downloads = Path(saved_downloads) if isinstance(saved_downloads, str) \
            and saved_downloads else default_downloads()
        self._connect_timeout = connect_timeout
        self.attention = attention or Attention()
        self._results: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._closing = False
        self.closed = False
        self.engine: Any = None
        self.nickname: str | None = None
        self.server_label = ""
        self.server_online = True
        self.title_unread = 0
        self.tabs: dict[str | None, ChatTab] = {}
        self.main_frame: ttk.Frame | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.Registered: self._on_registered, ev.RoomMessage: self._on_room,
            ev.PrivateMessage: self._on_private, ev.Joined: self._on_joined,
            ev.Left: self._on_left, ev.NotDelivered: self._on_not_delivered,
            ev.ServerLost: self._on_server_lost, ev.ServerBack: self._on_server_back,
            ev.Reregistered: self._on_reregistered, ev.KeyChanged: self._on_key_changed,
            ev.PeerUnreachable: self._on_peer_unreachable, ev.FileOffered: self._on_file_offered,
            ev.FileProgress: self._on_file_progress, ev.FileDone: self._on_file_done,
            ev.FileFailed: self._on_file_failed, ev.Fatal: self._on_fatal,
        }

        root_ = self.root
        root_.title(title_for(None, 0))
        root_.minsize(560, 380)
        root_.geometry(self._initial_geometry(str(self.settings.get("geometry", ""))))
        root_.protocol("WM_DELETE_WINDOW", self.close)
        ttk.Style(root_).configure("Status.TLabel", padding=(8, 3))
        root_.bind("<FocusIn>", self._focus_in, add="+")
        root_.bind("<Destroy>", self._destroyed, add="+")
        self.connect_frame = ConnectFrame(
            root_, server=server or str(self.settings.get("server", "")),
            nick=nick or str(self.settings.get("nick", "")), on_connect=self.connect)
        self.connect_frame.hint.configure(foreground=self.colours.muted)
        self.connect_frame.pack(fill="both", expand=True)
        self.connect_frame.focus_first()
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

    def _drain(self) -> bool:
        while True:
            try:
                kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            if kind == "ok":
                self._connected(value)
            elif kind == "verified":
                self._verified(*value)
            else:
                self.connect_frame.show_error(value)
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

    # --- connecting ----------------------------------------------------------------------------
    def connect(self, server_text: str, nick_text: str) -> None:
        try:
            host, port = parse_server(server_text)
            nick = check_nickname(nick_text)
        except ValueError as exc:
            self.connect_frame.show_error(str(exc))
            return
        label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.connect_frame.set_busy(True, f"Connecting to {label}…")
        self.settings.update(server=server_text.strip(), nick=nick)
        threading.Thread(target=self._connect_worker, args=((host, port), nick, label),
                         name="gui-connect", daemon=True).start()

    def _connect_worker(self, server: tuple[str, int], nick: str, label: str) -> None:
        # runs off the main thread: no Tk here, only the results queue
        engine = None
        try:
            engine = self._factory(server, nick, config_dir=self.config_dir)
            engine.start(timeout=self._connect_timeout)
            plug_in_files(engine, self.downloads)
        except Exception as exc:
            log.info("connecting to %s as %s failed: %r", label, nick, exc)
            if engine is not None:
                self._close_engine(engine)
            self._results.put(("error", describe_error(exc, nick, label)))
            return
        with self._lock:
            abandoned = self._closing
            if not abandoned:
                self._results.put(("ok", (engine, label)))
        if abandoned:   # the window closed while we were connecting
            self._close_engine(engine)

    def _connected(self, value: tuple[Any, str]) -> None:
        engine, label = value
        self.engine = engine
        self.nickname = str(getattr(engine, "nickname", "")) or self.settings.get("nick")
        self.server_label = label
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
        self.room.view.add_system(f"You are chatting as {self.nickname} on {label}.")
        self._update_status()
        self._update_title()
        log.info("connected to %s as %s", label, self.nickname)

    # --- the main window -----------------------------------------------------------------------
    def _build_main(self) -> None:
        root = self.root
        main = ttk.Frame(root, padding=(8, 8, 8, 0))
        self.main_frame = main
        panes = ttk.PanedWindow(main, orient="horizontal")
        self.notebook = ttk.Notebook(panes)
        self.notebook.bind("<<NotebookTabChanged>>", self._tab_changed)
        self.roster = Roster(panes, on_open=self.open_private, on_whois=self.show_whois,
                             on_send_file=self.send_file)
        panes.add(self.notebook, weight=4)
        panes.add(self.roster, weight=1)
        panes.pack(fill="both", expand=True)
        self.panes = panes
        self.files = FilesPanel(main, on_accept=self._accept_file, on_decline=self._decline_file,
                                on_cancel=self._cancel_file, on_change=self._files_changed)
        self.status_var = tk.StringVar(root, value="")
        self.status = ttk.Label(root, textvariable=self.status_var, style="Status.TLabel",
                                anchor="w")
        self.status.pack(side="bottom", fill="x")
        ttk.Separator(root, orient="horizontal").pack(side="bottom", fill="x")
        main.pack(fill="both", expand=True)
        self.tabs = {}
        room = self._new_tab(None)
        self.notebook.select(room)
        self._chat_menu_state("normal")
        room.input.text.focus_set()

    def _build_menu(self) -> None:
        """The menu bar and the window-wide keys; chat items work once connected."""
        menubar = tk.Menu(self.root)
        chat = tk.Menu(menubar, tearoff=False)
        chat_items = (
            ("Private chat with selected", "Enter (in list)",
             lambda: self._with_selected(self.open_private)),
            ("Who is this?", "", lambda: self._with_selected(self.show_whois)),
            ("Send file…", "", self._send_file_current),
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
        for menu in getattr(self, "menus", ()):
            menu.configure(background=c.background, foreground=c.foreground,
                           activebackground=c.select, activeforeground=c.foreground,
                           selectcolor=c.foreground, borderwidth=0)

    def _new_tab(self, peer: str | None) -> ChatTab:
        tab = ChatTab(self.notebook, self.colours, peer, on_send=self.send,
                      on_send_file=self.send_file if peer is not None else None)
        self.tabs[peer] = tab
        self.notebook.add(tab, text=tab.title)
        return tab

    @property
    def room(self) -> ChatTab:
        return self.tabs[None]

    def current_tab(self) -> ChatTab | None:
        try:
            name = self.notebook.select()
        except tk.TclError:
            return None
        return next((t for t in self.tabs.values() if str(t) == name), None)

    def open_private(self, nick: str, select: bool = True) -> ChatTab:
        tab = self.tabs.get(nick)
        if tab is None:
            tab = self._new_tab(nick)
            tab.view.add_system(f"Private conversation with {nick}. Only the two of you "
                                "see these messages.")
        if select:
            self.notebook.select(tab)
            tab.input.text.focus_set()
        return tab

    def close_tab(self) -> None:
        tab = self.current_tab()
        if tab is None or tab.peer is None:
            return
        self.notebook.forget(tab)
        del self.tabs[tab.peer]
        tab.destroy()
        self.room.input.text.focus_set()

    def cycle_tab(self, step: int) -> None:
        order = list(self.notebook.tabs())
        if not order:
            return
        current = self.notebook.select()
        i = order.index(current) if current in order else 0
        self.notebook.select(order[(i + step) % len(order)])

    def _tab_changed(self, _event: object) -> None:
        tab = self.current_tab()
        if tab is None:
            return
        if tab.unread:
            tab.unread = 0
            self.notebook.tab(tab, text=tab.title)
        tab.input.text.focus_set()

    def _with_selected(self, action: Callable[[str], Any]) -> None:
        nick = self.roster.selected()
        if nick is not None:
            action(nick)

    def _files_changed(self, has_rows: bool) -> None:
        if has_rows and not self.files.winfo_manager():
            self.files.pack(side="bottom", fill="x", before=self.panes)
        elif not has_rows and self.files.winfo_manager():
            self.files.pack_forget()

    # --- showing things ------------------------------------------------------------------------
    def _bump_unread(self, tab: ChatTab) -> None:
        if self.current_tab() is not tab:
            tab.unread += 1
            self.notebook.tab(tab, text=tab.title)

    def _window_focused(self) -> bool:
        # "focus" is empty when another application has the keyboard focus
        return bool(str(self.root.tk.call("focus")))

    def _focus_in(self, _event: object) -> None:
        if self.title_unread:
            self.title_unread = 0
            self._update_title()

    def _ask_attention(self, title: str, body: str, urgent: bool) -> None:
        if self._window_focused():
            return
        self.title_unread += 1
        self._update_title()
        hwnd = None
        if sys.platform == "win32":
            try:
                hwnd = int(self.root.wm_frame(), 16)
            except (tk.TclError, ValueError):
                hwnd = None
        self.attention.flash(hwnd)
        if urgent:
            self.attention.notify(title, body, now=time.monotonic())

    def _update_title(self) -> None:
        self.root.title(title_for(self.nickname, self.title_unread, self.server_online))

    def _update_status(self) -> None:
        if self.main_frame is None:
            return
        online = len(self.roster.nicks) + 1
        if self.server_online:
            text = f"Connected to {self.server_label} as {self.nickname} · {online} online"
        else:
            text = f"Server unreachable (peers still reachable) · {online} online"
        self.status_var.set(text)
        self.status.configure(foreground="" if self.server_online else self.colours.error)

    def _peer_view(self, nick: str) -> ChatTab:
        return self.tabs.get(nick) or self.room

    # --- engine events -------------------------------------------------------------------------
    def _on_registered(self, e: ev.Registered) -> None:
        self.nickname = e.nickname
        self.roster.set_all(e.nickname, e.roster)
        self._show_verified(e.roster)
        self._update_status()
        self._update_title()

    def _on_room(self, e: ev.RoomMessage) -> None:
        self.room.view.add_message(e.sender, e.text, warning=e.warning)
        self._clear_unreachable(e.sender)
        self._bump_unread(self.room)
        mention = bool(self.nickname) and self.nickname.casefold() in e.text.casefold()
        self._ask_attention(f"{e.sender} in the room", e.text, urgent=mention)

    def _on_private(self, e: ev.PrivateMessage) -> None:
        tab = self.open_private(e.sender, select=False)
        tab.view.add_message(e.sender, e.text, warning=e.warning)
        self._clear_unreachable(e.sender)
        self._bump_unread(tab)
        self._ask_attention(f"{e.sender} (private)", e.text, urgent=True)

    def _on_joined(self, e: ev.Joined) -> None:
        self.roster.add(e.nickname)
        self._show_verified([e.nickname])
        self.room.view.add_system(f"{e.nickname} joined")
        if e.nickname in self.tabs:
            self.tabs[e.nickname].view.add_system(f"{e.nickname} joined")
        self._update_status()

    def _on_left(self, e: ev.Left) -> None:
        self.roster.remove(e.nickname)
        self.room.view.add_system(f"{e.nickname} left")
        if e.nickname in self.tabs:
            self.tabs[e.nickname].view.add_system(f"{e.nickname} left")
        self._update_status()

    def _on_not_delivered(self, e: ev.NotDelivered) -> None:
        tab = self.tabs.get(e.nickname) if e.private else self.room
        if tab is None:
            tab = self.room
        if not tab.view.mark_undelivered(e.msg_id, e.nickname):
            short = e.text if len(e.text) <= 80 else e.text[:80] + "…"
            tab.view.add_system(f"not delivered to {e.nickname}: {short}", error=True)

    def _on_server_lost(self, e: ev.ServerLost) -> None:
        self.server_online = False
        self.room.view.add_system("The server is unreachable. People already in the list can "
                                  "still be reached; newcomers will not show up.", error=True)
        self._update_status()
        self._update_title()

    def _on_server_back(self, _e: ev.ServerBack) -> None:
        self.server_online = True
        self.room.view.add_system("The server is reachable again.")
        self._update_status()
        self._update_title()

    def _on_reregistered(self, _e: ev.Reregistered) -> None:
        self.server_online = True
        self.room.view.add_system(f"The server had forgotten us; registered again as "
                                  f"{self.nickname}.")
        self._update_status()
        self._update_title()

    def _on_key_changed(self, e: ev.KeyChanged) -> None:
        self.roster.set_marker(e.nickname, "⚠")
        text = (f"WARNING: {e.nickname}’s identity key has CHANGED. This may be an impostor. "
                f"Old fingerprint {e.old_fingerprint}, new {e.new_fingerprint}. Compare "
                f"fingerprints in person (right-click the name → Who is this?) before "
                f"trusting these messages.")
        self.room.view.add_system(text, error=True)
        if e.nickname in self.tabs:
            self.tabs[e.nickname].view.add_system(text, error=True)
        self._ask_attention(f"{e.nickname}: key changed", text, urgent=True)

    def _on_peer_unreachable(self, e: ev.PeerUnreachable) -> None:
        if not self.roster.markers.get(e.nickname, "").startswith("⚠"):
            self.roster.set_marker(e.nickname, "✗")
        self._peer_view(e.nickname).view.add_system(
            f"{e.nickname} cannot be reached: {e.reason}", error=True)

    def _show_verified(self, nicks: Iterable[str]) -> None:
        """✔ for people whose key was verified, in this run or an earlier one (the pins file):
        the engine keeps that answer ready, so asking does not wait on the engine thread."""
        check = getattr(self.engine, "is_verified", None)
        if check is None:
            return
        changes: dict[str, str | None] = {}
        for nick in nicks:
            current = self.roster.markers.get(nick)
            if current is not None and current != "✔":
                continue  # ⚠ (key changed) and ✗ (unreachable) say more
            want = "✔" if _quietly(lambda n=nick: check(n)) else None
            if want != current:
                changes[nick] = want
        self.roster.set_markers(changes)

    def _clear_unreachable(self, nick: str) -> None:
        if self.roster.markers.get(nick) == "✗":
            self.roster.set_marker(nick, None)

    def _on_file_offered(self, e: ev.FileOffered) -> None:
        if self.files.offer(e.transfer_id, e.sender, e.name, e.size):
            tab = self.open_private(e.sender, select=False)
            tab.view.add_system(f"{e.sender} offers the file “{e.name}” "
                                f"({human_size(e.size)}): Accept or Decline below.")
            self._bump_unread(tab)
            self._ask_attention(f"{e.sender} offers a file", e.name, urgent=True)

    def _on_file_progress(self, e: ev.FileProgress) -> None:
        self.files.progress(e.transfer_id, e.peer, e.name, e.done, e.total, e.bytes_per_s,
                            e.outgoing)

    def _on_file_done(self, e: ev.FileDone) -> None:
        self.files.finish(e.transfer_id)
        if e.outgoing:
            text = f"“{e.name}” was sent to {e.peer}."
        else:
            text = f"Received “{e.name}” from {e.peer}" + (f": saved as {e.path}" if e.path
                                                           else ".")
        self._peer_view(e.peer).view.add_system(text)

    def _on_file_failed(self, e: ev.FileFailed) -> None:
        self.files.finish(e.transfer_id)
        way = "to" if e.outgoing else "from"
        self._peer_view(e.peer).view.add_system(
            f"File “{e.name}” {way} {e.peer} failed: {e.reason}", error=True)

    def _on_fatal(self, e: ev.Fatal) -> None:
        log.error("engine stopped: %s", e.text)
        engine, self.engine = self.engine, None
        if engine is not None:
            threading.Thread(target=self._close_engine, args=(engine,), daemon=True).start()
        self._teardown_main()
        self.connect_frame.pack(fill="both", expand=True)
        self.connect_frame.show_error(f"Disconnected: {e.text}")

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

    # --- user actions --------------------------------------------------------------------------
    def send(self, peer: str | None, text: str) -> bool:
        """Send what the user typed; False keeps the text in the input (e.g. too long)."""
        engine = self.engine
        if engine is None:
            return False
        tab = self.tabs.get(peer, self.room)
        try:
            msg_id = engine.send_room(text) if peer is None else engine.send_private(peer, text)
        except ValueError as exc:   # MessageTooLarge is a ValueError
            tab.view.add_system(f"Not sent: {exc or 'message too long (at most 64 KiB)'}",
                                error=True)
            return False
        except Exception as exc:
            log.warning("sending failed: %r", exc)
            tab.view.add_system(f"Not sent: {exc}", error=True)
            return False
        tab.view.add_message(self.nickname or "me", text, own=True, msg_id=msg_id)
        return True

    def _verified(self, nick: str, ok: bool, dialog: WhoisDialog | None = None) -> None:
        """The engine's answer to "Mark as verified" (``mark_verified_later``)."""
        if self.main_frame is not None:
            if ok:
                self.roster.set_marker(nick, "✔")
            self._peer_view(nick).view.add_system(
                f"You marked {nick}’s key as verified." if ok
                else f"Could not mark {nick}’s key as verified: it is not known yet.",
                error=not ok)
        if dialog is not None:
            with contextlib.suppress(tk.TclError):
                if dialog.top.winfo_exists():
                    dialog.refresh()

    def show_whois(self, nick: str) -> None:
        WhoisDialog(self, nick)

    def send_file(self, nick: str) -> None:
        engine = self.engine
        offer = getattr(engine, "offer_files", None)
        tab = self._peer_view(nick)
        # the engine has offer_files() but may have no file-transfer manager plugged in
        if offer is None or getattr(engine, "files", True) is None:
            tab.view.add_system("Sending files is not available in this version.", error=True)
            return
        names = filedialog.askopenfilenames(parent=self.root, title=f"Send files to {nick}")
        paths = [Path(n) for n in self.root.tk.splitlist(names)] if names else []
        if not paths:
            return
        try:
            ids = offer(nick, paths)
        except Exception as exc:
            tab.view.add_system(f"Cannot offer the files: {exc}", error=True)
            return
        for transfer_id, path in zip(ids or (), paths, strict=False):
            self.files.waiting(transfer_id, nick, path.name)
        listed = ", ".join(f"“{p.name}”" for p in paths[:5]) + ("…" if len(paths) > 5 else "")
        tab.view.add_system(f"Offered {listed} to {nick}; waiting for an answer.")

    def _send_file_current(self) -> None:
        tab = self.current_tab()
        nick = tab.peer if tab is not None and tab.peer else self.roster.selected()
        if nick is not None:
            self.send_file(nick)
        else:
            self.room.view.add_system("Choose someone in the list first, then Send file…")

    def _engine_call(self, name: str, *args: Any) -> None:
        method = getattr(self.engine, name, None)
        if method is None:
            return
        try:
            method(*args)
        except Exception as exc:
            log.warning("%s%r failed: %r", name, args, exc)

    def _accept_file(self, transfer_id: int) -> None:
        self._engine_call("accept_file", transfer_id)

    def _decline_file(self, transfer_id: int) -> None:
        self._engine_call("decline_file", transfer_id)

    def _cancel_file(self, transfer_id: int) -> None:
        self._engine_call("cancel_file", transfer_id)

    def choose_downloads(self) -> None:
        chosen = filedialog.askdirectory(parent=self.root, initialdir=str(self.downloads),
                                         title="Where received files are saved", mustexist=False)
        if chosen:
            self.set_downloads(Path(chosen))

    def set_downloads(self, folder: Path) -> None:
        """Where received files go from now on (remembered in the settings)."""
        self.downloads = folder
        self.settings["downloads"] = str(folder)
        files = getattr(self.engine, "files", None)
        if files is not None and hasattr(files, "downloads"):
            files.downloads = folder     # transfers accepted from now on land there
        if self.main_frame is not None:
            self.room.view.add_system(f"Received files will be saved in {folder}.")

    def set_theme(self, name: str) -> None:
        self.theme = normalise_theme(name)
        self.colours = apply_theme(self.root, self.theme)
        self.connect_frame.hint.configure(foreground=self.colours.muted)
        for tab in self.tabs.values():
            tab.recolour(self.colours)
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

    @staticmethod
    def _close_engine(engine: Any) -> None:
        try:
            engine.close()
        except Exception as exc:
            log.warning("closing the engine failed: %r", exc)

    def close(self) -> None:
        """Window closed: QUIT (off the main thread, short join), save settings, destroy."""
        if self.closed:
            return
        self.closed = True
        with self._lock:
            self._closing = True
        self._save_settings()
        engines = [self.engine] if self.engine is not None else []
        self.engine = None
        # a connect worker may have finished after our last poll: its engine must QUIT too
        while True:
            try:
                kind, value = self._results.get_nowait()
            except queue.Empty:
                break
            if kind == "ok":
                engines.append(value[0])
        if engines:
            def close_all() -> None:
                for engine in engines:
                    self._close_engine(engine)

            closer = threading.Thread(target=close_all, name="gui-close", daemon=True)
            closer.start()
            closer.join(CLOSE_JOIN)
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
            self._poll_id = None
        with contextlib.suppress(tk.TclError):
            self.root.destroy()
        _collect_tk_garbage()


def _quietly(fn: Callable[[], Any] | None) -> Any:
    """``fn()``, or None if there is no ``fn`` or it fails (logged)."""
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:
        log.warning("%s failed: %r", getattr(fn, "__name__", fn), exc)
        return None


class WhoisDialog:
    """"Who is this?": the key fingerprint to compare aloud, and "Mark as verified"."""

    def __init__(self, app: App, nick: str) -> None:
        self.app, self.nick = app, nick
        # the engine's answers (fetch_identity calls back on the engine thread), polled here
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._poll_id: str | None = None
        self.fetching = False
        top = self.top = tk.Toplevel(app.root)
        top.title(f"Who is {nick}?")
        top.transient(app.root)
        top.resizable(False, False)
        frame = ttk.Frame(top, padding=16)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text=nick, font=font(top, "TkHeadingFont", 14, "bold")).grid(
            row=0, column=0, columnspan=2, sticky="w")
        self.state_var = tk.StringVar(top)
        self.state_label = ttk.Label(frame, textvariable=self.state_var, wraplength=420,
                                     justify="left")
        self.state_label.grid(row=1, column=0, columnspan=2, sticky="w", pady=(6, 10))
        ttk.Label(frame, text=f"{nick}’s fingerprint").grid(row=2, column=0, sticky="w")
        self.fp_var = tk.StringVar(top)
        # read-only entries: selectable and copyable, unlike labels
        mono = font(top, "TkFixedFont", 11)
        ttk.Entry(frame, textvariable=self.fp_var, state="readonly", width=52,
                  font=mono).grid(row=3, column=0, columnspan=2, sticky="ew", pady=(2, 10))
        own = getattr(app.engine, "own_fingerprint", None)
        self.own_var = tk.StringVar(top, value=_quietly(own) or "")
        if self.own_var.get():
            ttk.Label(frame, text="Your fingerprint (read it to them)").grid(
                row=4, column=0, sticky="w")
            ttk.Entry(frame, textvariable=self.own_var, state="readonly", width=52,
                      font=mono).grid(row=5, column=0, columnspan=2, sticky="ew", pady=(2, 10))
        self.verify_button = ttk.Button(frame, text="Mark as verified",
                                        style="Accent.TButton", command=self.verify)
        self.verify_button.grid(row=6, column=0, sticky="w", pady=(4, 0))
        close = ttk.Button(frame, text="Close", command=top.destroy)
        close.grid(row=6, column=1, sticky="e", pady=(4, 0))
        top.bind("<Escape>", lambda _e: top.destroy())
        self.refresh()
        self.verify_button.focus_set()
        # keyboard users land in the dialog even where the window manager does not focus it
        self._afters = [top.after_idle(self._take_focus)]
        top.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        # pending after() callbacks of a destroyed window would fire into deleted commands
        if event.widget is self.top:
            if self._poll_id is not None:
                self._afters.append(self._poll_id)
                self._poll_id = None
            for after_id in self._afters:
                with contextlib.suppress(tk.TclError):
                    self.top.after_cancel(after_id)
            self._afters.clear()

    def _take_focus(self) -> None:
        with contextlib.suppress(tk.TclError):
            if self.top.winfo_exists():
                self.top.focus_force()
                self.verify_button.focus_set()

    def refresh(self) -> None:
        """Ask the engine again. With no session yet it starts a handshake to learn the key;
        the answer comes back through ``_answers`` (the Tk thread never waits on the engine)."""
        engine = self.app.engine
        fetch = getattr(engine, "fetch_identity", None)
        if fetch is None:  # an engine without it (tests' stand-ins): ask directly
            getter = getattr(engine, "whois", None)
            self.show(_quietly(lambda: getter(self.nick)) if getter is not None else None)
            return
        if not self.fp_var.get():
            self.fp_var.set("(fetching…)")
            self.state_var.set(f"Fetching {self.nick}’s key: a secure session with them is "
                               "starting…")
            self.verify_button.configure(state="disabled")
        self.fetching = True
        _quietly(lambda: fetch(self.nick, self._answers.put, WHOIS_FETCH_S))
        if self._poll_id is None:
            self._poll_id = self.top.after(POLL_MS, self._poll_answer)

    def _poll_answer(self) -> None:
        self._poll_id = None
        try:
            if not self.top.winfo_exists():
                return
            try:
                whois = self._answers.get_nowait()
            except queue.Empty:
                self._poll_id = self.top.after(POLL_MS, self._poll_answer)
                return
            self.fetching = False
            self.show(whois)
        except tk.TclError:
            pass

    def show(self, whois: ev.Whois | None) -> None:
        fingerprint = getattr(whois, "fingerprint", None)
        if fingerprint:
            self.fp_var.set(fingerprint)
        elif whois is None:
            self.fp_var.set(f"(unknown: {self.nick} is not online)")
        else:
            self.fp_var.set("(unknown: no answer to the secure handshake so far)")
        if whois is not None and whois.key_changed:
            self.state_var.set("⚠ This person’s key CHANGED since you first saw them. It may be "
                               "an impostor. Compare the fingerprint aloud before trusting.")
            self.state_label.configure(foreground=self.app.colours.error)
        elif whois is not None and whois.verified:
            self.state_var.set("✔ Verified: you compared this fingerprint before.")
        else:
            self.state_var.set("Not verified. Ask them to read their fingerprint aloud (in "
                               "person or by phone); if it matches, mark it as verified.")
        verified = whois is not None and whois.verified and not whois.key_changed
        self.verify_button.configure(state="disabled" if verified or not fingerprint
                                     else "normal")

    def verify(self) -> None:
        later = getattr(self.app.engine, "mark_verified_later", None)
        if later is not None:
            # saving the pins may fsync: the engine does it and answers through App._results
            self.verify_button.configure(state="disabled")
            nick, results = self.nick, self.app._results
            _quietly(lambda: later(nick, lambda ok: results.put(("verified", (nick, ok, self)))))
            return
        self.app._engine_call("mark_verified", self.nick)  # an engine without it: at once
        if self.app.main_frame is not None:
            self.app.roster.set_marker(self.nick, "✔")
            self.app._peer_view(self.nick).view.add_system(
                f"You marked {self.nick}’s key as verified.")
        self.refresh()
        # the engine applies the mark on its own thread: look again a moment later
        self._afters.append(self.top.after(300, self._refresh_if_open))

    def _refresh_if_open(self) -> None:
        try:
            if self.top.winfo_exists():
                self.refresh()
        except tk.TclError:
            pass


def main(server: str | tuple[str, int] | None = None, nick: str | None = None,
         config_dir: Path | None = None) -> int:
    """Open the window; with both ``server`` and ``nick`` given, connect at once.

    ``server`` is ``HOST[:PORT]`` text, or the (host, port) pair client/__main__.py parsed.
    """
    if isinstance(server, tuple):
        host, port = server
        server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
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
