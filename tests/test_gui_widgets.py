"""The Tk widgets and the App's event handling, fed by a small stand-in engine.

The stand-in only records calls and hands out events (logic under test is the GUI's); the
end-to-end tests with the real engine, server and terminal client are in tests/test_gui.py.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from client import events as ev
from client.config import load_json, settings_path
from client.errors import FilesUnavailable
from client.gui import App, file_handlers
from client.gui import chat as gui_chat
from client.gui.chat import InputLine, MessageView
from client.gui.theme import THEMES
from client.peer.messenger import MessageTooLarge
from tests.test_gui_support import press, pump, shown_root, type_text

pytestmark = pytest.mark.gui


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


class StandIn:
    """Records what the GUI asks of an engine; events are put on ``events`` by the test."""

    def __init__(self, server: tuple[str, int], nickname: str, **kwargs: Any) -> None:
        self.server, self.nickname, self.kwargs = server, nickname, kwargs
        self.events: queue.Queue[object] = queue.Queue()
        self.calls: list[tuple[Any, ...]] = []
        self.ids = itertools.count(1)
        self.verified: set[str] = set()
        self.closed_in: str | None = None
        self.chat: Any = None   # an engine without a chat part: tabs as before issue 11

    def start(self, timeout: float = 5.0) -> None:
        self.calls.append(("start", threading.current_thread().name))
        self.events.put(ev.Registered(self.nickname, ("bob", "carol")))

    def roster(self) -> list[str]:
        return ["bob", "carol"]

    def send_room(self, text: str) -> int:
        if len(text.encode()) > 64 * 1024:
            raise MessageTooLarge("message of 70000 bytes; the limit is 65536 bytes")
        self.calls.append(("room", text))
        return next(self.ids)

    def send_private(self, nick: str, text: str) -> int:
        self.calls.append(("private", nick, text))
        return next(self.ids)

    def whois(self, nick: str) -> ev.Whois:
        return ev.Whois(nick, "AB12 CD34 EF56", nick in self.verified, nick == "carol")

    def fetch_identity(self, nick: str, on_result: Any, timeout: float = 1.5) -> None:
        on_result(self.whois(nick))          # the key is known at once

    def own_fingerprint(self) -> str | None:
        return None

    def is_verified(self, nick: str) -> bool:
        return nick in self.verified

    def mark_verified(self, nick: str) -> bool:
        self.verified.add(nick)
        return True

    def mark_verified_later(self, nick: str, on_result: Any) -> None:
        on_result(self.mark_verified(nick))  # answered at once, on the caller's thread

    def attach_files(self, downloads: Path) -> Any:
        raise FilesUnavailable("no file transfer in this stand-in")

    def offer_files(self, nick: str, paths: list[Path]) -> list[int]:
        raise FilesUnavailable("no file transfer in this stand-in")

    def accept_file(self, tid: int) -> None:
        self.calls.append(("accept", tid))

    def decline_file(self, tid: int) -> None:
        self.calls.append(("decline", tid))

    def cancel_file(self, tid: int) -> None:
        self.calls.append(("cancel", tid))

    def close(self) -> None:
        self.closed_in = threading.current_thread().name


def connected_app(root: tk.Tk, tmp_path: Path, factory: Any = None) -> App:
    app = App(root, config_dir=tmp_path, engine_factory=factory or StandIn)
    app.connect("127.0.0.1:7799", "alice")
    pump(root, lambda: app.main_frame is not None, what="the main window")
    pump(root, lambda: app.engine.events.empty())
    root.update()
    return app


def lines(view: MessageView) -> list[str]:
    return view.content().split("\n")


def test_emoji_and_cyrillic_with_undelivered_mark(root: tk.Tk) -> None:
    view = MessageView(root, THEMES["light"])
    view.pack(fill="both", expand=True)
    view.add_message("alice", "emoji 😀🎉 и кириллица Привет", when=0, own=True, msg_id=5)
    view.add_message("bob", "👍👍👍 after", when=0)
    view.add_message("alice", "second 🎉", when=0, own=True, msg_id=6)
    assert view.mark_undelivered(5, "bob")
    assert view.mark_undelivered(5, "carol")
    assert view.mark_undelivered(6, "Вася")
    assert not view.mark_undelivered(99, "bob")
    got = [line.split(" ", 1)[1] for line in lines(view)[:3]]
    assert got == [
        "alice  emoji 😀🎉 и кириллица Привет  ✗ not delivered to bob  ✗ not delivered to carol",
        "bob  👍👍👍 after",
        "alice  second 🎉  ✗ not delivered to Вася",
    ]


def test_hostile_text_is_shown_verbatim_but_defanged(root: tk.Tk) -> None:
    view = MessageView(root, THEMES["light"])
    view.pack()
    tcl = "{[set x]} $y \\ \" ;exit"
    view.add_message("bob", tcl, when=0)
    view.add_message("bob", "a\x00b\x1b[31mc\u202eevil\ud800", when=0)
    view.add_system("file “x\ry.txt” failed", when=0)
    got = [line.split(" ", 1)[1] for line in lines(view)[:3]]
    assert got == [f"bob  {tcl}", "bob  a\ufffdb\ufffd[31mc\ufffdevil\ufffd",
                   "-!- file “x\ufffdy.txt” failed"]


def test_multiline_message_and_bounded_history(root: tk.Tk,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gui_chat, "MAX_LINES", 100)
    view = MessageView(root, THEMES["dark"])
    view.pack()
    view.add_message("bob", "one\ntwo\n", when=0)
    assert lines(view)[:2] == [lines(view)[0].split(" ")[0] + " bob  one", "two"]
    for i in range(300):
        view.add_message("alice", f"line {i} 😀", when=0, own=True, msg_id=i)
    count = int(view.text.index("end-1c").split(".")[0])
    assert count <= 101
    assert len(view._own_ids) <= 101
    assert not view.mark_undelivered(0, "bob")          # trimmed away: no error
    assert view.mark_undelivered(299, "bob")
    assert lines(view)[-2].endswith("line 299 😀  ✗ not delivered to bob")


def test_input_line_enter_shift_enter_and_history(root: tk.Tk) -> None:
    sent: list[str] = []
    line = InputLine(root, THEMES["light"], lambda text: sent.append(text) or True)
    line.pack()
    type_text(line.text, "first")
    line.text.event_generate("<Return>")
    type_text(line.text, "two")
    line.text.event_generate("<Shift-Return>")
    type_text(line.text, "lines")
    line.text.event_generate("<Return>")
    root.update()
    assert sent == ["first", "two\nlines"]
    assert line.get() == ""
    type_text(line.text, "draft")
    line.text.event_generate("<Up>")
    assert line.get() == "two\nlines"
    line.text.mark_set("insert", "1.0")
    line.text.event_generate("<Up>")
    assert line.get() == "first"
    line.text.event_generate("<Down>")
    line.text.event_generate("<Down>")
    assert line.get() == "draft"
    line.set("   ")
    line.text.event_generate("<Return>")
    assert sent == ["first", "two\nlines"]               # blank input is not sent


def test_keyboard_tab_order_and_paging(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    tab = app.open_private("bob")
    root.update()
    order = []
    for _ in range(5):
        order.append(root.focus_get())
        press(root.focus_get(), "<Tab>")
    assert order == [tab.input.text, tab.send_button, tab.file_button, app.roster.tree,
                     app.notebook]
    assert root.focus_get() is tab.input.text                  # and round again
    for i in range(80):
        tab.view.add_message("bob", f"line {i}", when=0)
    bottom = tab.view.text.yview()
    press(tab.input.text, "<Prior>")                           # Page Up scrolls the messages
    assert tab.view.text.yview()[0] < bottom[0]
    assert root.focus_get() is tab.input.text


def test_app_shows_events_tabs_unread_and_roster(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    assert engine.calls[0] == ("start", "gui-connect")   # start() ran off the main thread
    assert app.roster.count_var.get() == "3 online"
    engine.events.put(ev.Joined("dave"))
    engine.events.put(ev.RoomMessage("bob", "Привет 😀"))
    engine.events.put(ev.PrivateMessage("carol", "psst 🤫"))
    engine.events.put(ev.PrivateMessage("carol", "again"))
    pump(root, lambda: "carol" in app.tabs and "again" in app.tabs["carol"].view.content())
    assert "dave joined" in app.room.view.content()
    assert "bob  Привет 😀" in app.room.view.content()
    assert app.notebook.tab(app.tabs["carol"], "text") == "carol (2)"
    assert app.roster.count_var.get() == "4 online"
    assert "4 online" in app.status_var.get()
    # switching to the tab clears its unread count
    app.notebook.select(app.tabs["carol"])
    root.update()
    assert app.notebook.tab(app.tabs["carol"], "text") == "carol"
    # typing in the private tab sends privately
    type_text(app.tabs["carol"].input.text, "hello carol")
    app.tabs["carol"].input.text.event_generate("<Return>")
    root.update()
    assert ("private", "carol", "hello carol") in engine.calls
    # a private message that was not delivered is marked in the private tab
    engine.events.put(ev.NotDelivered("carol", "hello carol", 1, private=True))
    pump(root, lambda: "✗ not delivered to carol" in app.tabs["carol"].view.content())
    # Ctrl+Tab cycles the tabs, Ctrl+W closes a private tab but never the room
    press(app.tabs["carol"].input.text, "<Control-Tab>")
    assert app.current_tab() is app.room
    press(app.room.input.text, "<Control-Tab>")
    assert app.current_tab() is app.tabs["carol"]
    press(app.tabs["carol"].input.text, "<Control-w>")
    assert "carol" not in app.tabs
    press(app.room.input.text, "<Control-w>")
    assert None in app.tabs and app.current_tab() is app.room


def test_title_counts_unread_while_unfocused(root: tk.Tk, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = connected_app(root, tmp_path)
    app.attention._notify_send = None      # never start notify-send from a test
    assert root.title() == "OpenLChat — alice"
    monkeypatch.setattr(app, "_window_focused", lambda: False)
    app.engine.events.put(ev.RoomMessage("bob", "anyone?"))
    app.engine.events.put(ev.PrivateMessage("carol", "psst"))
    app.engine.events.put(ev.RoomMessage("bob", "alice, are you there?"))
    pump(root, lambda: root.title().startswith("(3) "))
    # private messages and mentions ask for a notification (rate-limited: one here)
    assert app.attention.sent == [("carol (private)", "psst")]
    monkeypatch.setattr(app, "_window_focused", lambda: True)
    root.event_generate("<FocusIn>")
    assert root.title() == "OpenLChat — alice"


def test_key_change_server_lost_and_too_long(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    engine.events.put(ev.KeyChanged("carol", "AAAA", "BBBB"))
    engine.events.put(ev.RoomMessage("carol", "trust me", warning="UNVERIFIED KEY CHANGE"))
    engine.events.put(ev.ServerLost())
    engine.events.put(ev.Left("bob"))
    pump(root, lambda: "bob left" in app.room.view.content())
    text = app.room.view.content()
    assert "carol’s identity key has CHANGED" in text
    assert "[UNVERIFIED KEY CHANGE] trust me" in text
    assert app.room.view.text.tag_ranges("error")        # shown in red
    assert app.roster.text_of("carol") == "⚠ carol"
    assert app.status_var.get().startswith("Server unreachable (peers still reachable)")
    assert "2 online" in app.status_var.get()
    engine.events.put(ev.ServerBack())
    pump(root, lambda: app.status_var.get().startswith("Connected"))
    # too long: refused with a clear line, the text stays in the input
    room = app.room
    room.input.set("x" * 70000)
    room.input.submit()
    assert "Not sent: message of 70000 bytes" in room.view.content()
    assert len(room.input.get()) == 70000


def test_whois_dialog_marks_verified(root: tk.Tk, tmp_path: Path) -> None:
    from client.gui import WhoisDialog
    app = connected_app(root, tmp_path)
    dialog = WhoisDialog(app, "bob")
    root.update()
    assert dialog.fp_var.get() == "AB12 CD34 EF56"
    assert "Not verified" in dialog.state_var.get()
    dialog.verify_button.invoke()
    assert "bob" in app.engine.verified
    assert app.roster.text_of("bob") == "✔ bob"
    assert dialog.state_var.get().startswith("✔ Verified")
    assert str(dialog.verify_button.cget("state")) == "disabled"
    dialog.top.destroy()
    changed = WhoisDialog(app, "carol")
    assert "CHANGED" in changed.state_var.get()
    changed.top.destroy()


def test_file_offer_progress_and_done(root: tk.Tk, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    engine.events.put(ev.FileOffered(7, "bob", "фото 😀.jpg", 2_500_000))
    pump(root, lambda: 7 in app.files.rows)
    assert app.files.winfo_manager() == "pack"           # the panel shows itself
    assert "offers the file “фото 😀.jpg” (2.4 MiB)" in app.tabs["bob"].view.content()
    app.files._answer(7, True)
    assert ("accept", 7) in engine.calls
    engine.events.put(ev.FileProgress(7, "bob", "фото 😀.jpg", 1_000_000, 2_500_000,
                                      500_000.0, False))
    pump(root, lambda: app.files.rows[7].bar is not None)
    assert "976.6 KiB of 2.4 MiB" in app.files.rows[7].label.get()
    engine.events.put(ev.FileDone(7, "bob", "фото 😀.jpg", tmp_path / "фото 😀.jpg"))
    engine.events.put(ev.FileOffered(8, "carol", "x.bin", 1))
    engine.events.put(ev.FileFailed(9, "carol", "y.bin", "cancelled by carol", outgoing=True))
    pump(root, lambda: 7 not in app.files.rows and 8 in app.files.rows)
    assert "Received “фото 😀.jpg” from bob: saved as" in app.tabs["bob"].view.content()
    assert "File “y.bin” to carol failed: cancelled by carol" in \
        app.tabs["carol"].view.content()
    app.files._answer(8, False)
    assert ("decline", 8) in engine.calls
    assert app.files.winfo_manager() == ""               # empty again: hidden
    # no file transfer in this engine: said plainly, no file dialog
    app.send_file("bob")
    assert "Sending files is not available" in app.tabs["bob"].view.content()
    # with file transfer: the dialog's choice is offered, each file waits with a Cancel button
    offered: list[tuple[str, list[Path]]] = []
    app.transfers = SimpleNamespace(downloads=tmp_path)  # type: ignore[assignment]
    engine.offer_files = lambda nick, paths: offered.append((nick, paths)) or [21, 22]
    monkeypatch.setattr(file_handlers.filedialog, "askopenfilenames",
                        lambda **_kw: (str(tmp_path / "a.txt"), str(tmp_path / "б 😀.bin")))
    app.send_file("bob")
    assert offered == [("bob", [tmp_path / "a.txt", tmp_path / "б 😀.bin"])]
    assert "waiting for an answer" in app.files.rows[22].label.get()
    assert "Offered “a.txt”, “б 😀.bin” to bob" in app.tabs["bob"].view.content()
    app.files._cancel_clicked(21)
    assert ("cancel", 21) in engine.calls and 21 not in app.files.rows
    engine.events.put(ev.FileProgress(22, "bob", "б 😀.bin", 5, 10, 1.0, True))
    pump(root, lambda: app.files.rows[22].bar is not None)
    assert app.files.rows[22].label.get().startswith("→ bob  “б 😀.bin”  5 B of 10 B")


def test_close_quits_off_main_thread_and_saves_settings(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    app.set_theme("dark")
    app.set_downloads(tmp_path / "incoming")
    assert f"Received files will be saved in {tmp_path / 'incoming'}" in app.room.view.content()
    app.close()
    assert engine.closed_in == "gui-close"
    saved = load_json(settings_path(tmp_path))
    assert saved["server"] == "127.0.0.1:7799"
    assert saved["nick"] == "alice"
    assert saved["theme"] == "dark"
    assert saved["downloads"] == str(tmp_path / "incoming")
    assert "x" in saved["geometry"]
    # the next run starts with what was saved
    again = App(tk.Tk(), config_dir=tmp_path, engine_factory=StandIn)
    assert again.connect_frame.server_var.get() == "127.0.0.1:7799"
    assert again.connect_frame.nick_var.get() == "alice"
    assert again.theme == "dark"
    assert again.downloads == tmp_path / "incoming"
    again.close()


def test_fatal_returns_to_the_connect_screen(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    engine.events.put(ev.Fatal("the socket died"))
    pump(root, lambda: app.main_frame is None)
    assert app.connect_frame.error_var.get() == "Disconnected: the socket died"
    pump(root, lambda: engine.closed_in is not None)


def test_screenshots_tool_writes_pngs(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys
    if not shutil.which("import"):
        pytest.skip("ImageMagick's `import` is not installed (tools/screenshots.py needs it)")
    root_dir = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "tools/screenshots.py", str(tmp_path / "shots")],
                   cwd=root_dir, env=dict(os.environ), check=True, timeout=60,
                   capture_output=True)
    for name in ("connect", "room", "private", "whois", "room-dark", "connecting", "settings",
                 "help", "about", "disconnected", "send-file", "channel", "join",
                 "channel-dark"):
        data = (tmp_path / "shots" / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_saved_geometry_is_kept_on_screen(root: tk.Tk, tmp_path: Path) -> None:
    app = App(root, config_dir=tmp_path, engine_factory=StandIn)
    screen_w, screen_h = root.winfo_screenwidth(), root.winfo_screenheight()
    assert app._initial_geometry("800x500+10+20") == "800x500+10+20"
    assert app._initial_geometry("800x500+-20+20") == "800x500+-20+20"
    assert app._initial_geometry(f"800x500+{screen_w + 50}+0") == "800x500"   # monitor gone
    assert app._initial_geometry("800x500-10+5") == "800x500"
    assert app._initial_geometry("99999x99999+0+0") == f"{screen_w}x{screen_h}+0+0"
    assert app._initial_geometry("garbage") == "900x600"


def test_a_flood_of_events_is_shown_a_slice_per_tick(root: tk.Tk, tmp_path: Path) -> None:
    from client.gui.app import MAX_EVENTS_PER_TICK
    app = connected_app(root, tmp_path)
    for i in range(MAX_EVENTS_PER_TICK + 50):
        app.engine.events.put(ev.RoomMessage("bob", f"flood {i}"))
    assert app._drain() is True                       # more left: the next tick comes soon
    assert app.engine.events.qsize() == 50
    assert app._drain() is False
    assert f"flood {MAX_EVENTS_PER_TICK + 49}" in app.room.view.content()


def test_whois_shows_both_fingerprints(root: tk.Tk, tmp_path: Path) -> None:
    from client.gui import WhoisDialog
    app = connected_app(root, tmp_path)
    app.engine.own_fingerprint = lambda: "MINE 0000"
    dialog = WhoisDialog(app, "bob")
    assert dialog.own_var.get() == "MINE 0000"
    dialog.top.destroy()
    app.engine.whois = lambda nick: (_ for _ in ()).throw(RuntimeError("engine closed"))
    broken = WhoisDialog(app, "bob")                  # a failing engine: still a dialog
    assert broken.fp_var.get().startswith("(unknown")
    assert str(broken.verify_button.cget("state")) == "disabled"
    broken.top.destroy()


def test_roster_enter_and_context_menu(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    tree = app.roster.tree
    assert [tree.item(i, "text") for i in tree.get_children()] == ["alice (you)", "bob", "carol"]
    tree.selection_set("n:carol")
    tree.focus("n:carol")
    press(tree, "<Return>")
    assert app.current_tab() is app.tabs["carol"]
    tree.selection_set("n:bob")
    app.roster.menu.invoke("Private chat")
    assert app.current_tab() is app.tabs["bob"]
    before = set(root.winfo_children())
    app.roster.menu.invoke("Who is this?")
    dialogs = [w for w in set(root.winfo_children()) - before if isinstance(w, tk.Toplevel)]
    assert len(dialogs) == 1 and dialogs[0].title() == "Who is bob?"
    root.update()
    assert root.focus_get().winfo_toplevel() is dialogs[0]   # keyboard focus moved there
    press(root.focus_get(), "<Escape>")
    assert not dialogs[0].winfo_exists()
    tree.selection_set("me")                  # yourself: no menu action does anything
    assert app.roster.selected() is None


class Fetching(StandIn):
    """An engine whose keys arrive later, from another thread, like a handshake's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[Any] = []
        self.verified = {"carol"}  # verified in an earlier run

    def fetch_identity(self, nick: str, on_result: Any, timeout: float = 1.5) -> None:
        self.pending.append((nick, on_result))

    def is_verified(self, nick: str) -> bool:
        return nick in self.verified


def test_whois_dialog_waits_for_the_key_without_blocking(root: tk.Tk, tmp_path: Path) -> None:
    from client.gui import WhoisDialog
    app = App(root, config_dir=tmp_path, engine_factory=Fetching)
    app.connect("127.0.0.1:7799", "alice")
    pump(root, lambda: app.main_frame is not None, what="the main window")
    assert app.roster.text_of("carol") == "✔ carol" and app.roster.text_of("bob") == "bob"
    app.handle(ev.Joined("dave"))
    assert app.roster.text_of("dave") == "dave"
    app.engine.verified.add("erin")
    app.handle(ev.Joined("erin"))
    assert app.roster.text_of("erin") == "✔ erin"
    dialog = WhoisDialog(app, "bob")   # returns at once; the answer comes later
    assert dialog.fetching and dialog.fp_var.get() == "(fetching…)"
    assert str(dialog.verify_button.cget("state")) == "disabled"
    nick, on_result = app.engine.pending.pop()
    assert nick == "bob"
    threading.Thread(target=on_result, args=(ev.Whois("bob", "QQ11 RR22"),)).start()
    pump(root, lambda: not dialog.fetching, what="the answer")
    assert dialog.fp_var.get() == "QQ11 RR22"
    assert str(dialog.verify_button.cget("state")) == "normal"
    dialog.top.destroy()
    gone = WhoisDialog(app, "zed")
    app.engine.pending.pop()[1](None)  # not online
    pump(root, lambda: not gone.fetching, what="the answer")
    assert gone.fp_var.get() == "(unknown: zed is not online)"
    gone.top.destroy()


def test_closing_before_the_poll_quits_an_engine_already_connected(root: tk.Tk,
                                                                   tmp_path: Path) -> None:
    app = App(root, config_dir=tmp_path, engine_factory=StandIn)
    app.connect("127.0.0.1:7799", "alice")
    end = time.monotonic() + 5
    while app._results.empty():  # the worker is done; no Tk update, so no poll ran
        assert time.monotonic() < end, "the connect worker never answered"
        time.sleep(0.01)
    _kind, (engine, _label) = app._results.queue[0]
    app.close()
    assert app.engine is None and engine.closed_in == "gui-close"


class LaterVerifier(StandIn):
    """An engine whose mark_verified answers later, on another thread (like the real one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[tuple[str, Any]] = []

    def mark_verified(self, nick: str) -> bool:
        raise AssertionError("the Tk thread must not wait for mark_verified")

    def mark_verified_later(self, nick: str, on_result: Any) -> None:
        self.pending.append((nick, on_result))

    def answer(self) -> None:
        nick, on_result = self.pending.pop(0)
        ok = nick != "carol"
        if ok:
            self.verified.add(nick)
        threading.Thread(target=on_result, args=(ok,)).start()


def test_mark_as_verified_never_waits_for_the_engine(root: tk.Tk, tmp_path: Path) -> None:
    from client.gui import WhoisDialog
    app = App(root, config_dir=tmp_path, engine_factory=LaterVerifier)
    app.connect("127.0.0.1:7799", "alice")
    pump(root, lambda: app.main_frame is not None, what="the main window")
    dialog = WhoisDialog(app, "bob")
    root.update()
    dialog.verify_button.invoke()
    assert app.engine.pending and app.roster.text_of("bob") == "bob"  # asked, not waited
    assert str(dialog.verify_button.cget("state")) == "disabled"
    app.engine.answer()
    pump(root, lambda: app.roster.text_of("bob") == "✔ bob", what="the ✔ mark")
    pump(root, lambda: dialog.state_var.get().startswith("✔ Verified"), what="the dialog")
    assert "You marked bob’s key as verified." in app._peer_view("bob").view.content()
    dialog.top.destroy()
    app._verified("carol", False)  # refused (no key yet): said, no mark
    assert app.roster.text_of("carol") == "carol"
    assert "Could not mark carol’s key" in app._peer_view("carol").view.content()
