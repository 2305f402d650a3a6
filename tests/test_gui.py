"""The Tk window end to end: real engine, real server.py, a real terminal client subprocess.

Under Xvfb (pytest-xvfb) with a shown, focused window; the Tk loop is driven by ``update()``
in polling loops with deadlines (tests/test_gui_support.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path
from tkinter import ttk

import pytest

from client.config import format_address
from client.engine import Engine
from client.gui import App, WhoisDialog
from client.peer import identity
from client.peer.identity import fingerprint
from client.reachlink import ReachConfig
from tests.test_gui_support import (
    TkThreadRecorder,
    new_root,
    press,
    pump,
    shown_root,
    type_text,
)

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0   # generous: the first message to a peer also runs the encryption handshake


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


class TerminalClient:
    """``python -m client --headless`` in a subprocess; its stdout lines arrive in a queue."""

    def __init__(self, server: tuple[str, int], nick: str, config_dir: Path,
                 extra: tuple[str, ...] = ()) -> None:
        env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "client", "--headless", "--server",
             format_address(server), "--nick", nick, "--config-dir", str(config_dir), *extra],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, encoding="utf-8")
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        # stderr is drained too, so a chatty log can never fill the pipe and stall the client
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=lambda: self.errors.extend(self.proc.stderr or ()),
                                         daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_line(self, root: tk.Misc, wanted: str, timeout: float = WAIT,
                  prefix: bool = False) -> None:
        """Keep the Tk loop running (the GUI must answer acks) until ``wanted`` is printed."""
        def arrived() -> bool:
            while True:
                try:
                    self.seen.append(self.lines.get_nowait())
                except queue.Empty:
                    if prefix:
                        return any(line.startswith(wanted) for line in self.seen)
                    return wanted in self.seen
        try:
            pump(root, arrived, timeout, what=f"terminal line {wanted!r}")
        except AssertionError:
            raise AssertionError(f"{wanted!r} not printed; got {self.seen}; "
                                 f"stderr {self.errors[-5:]}") from None

    def wait_registered(self, root: tk.Misc) -> None:
        # stdin is read only once registration is done, so an answer to /who proves it
        self.say("/who")
        self.wait_line(root, "-!- online", prefix=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for reader in self.readers:   # they end at EOF, now that the process is gone
            reader.join(2)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[[tuple[str, int], str], TerminalClient]]:
    clients: list[TerminalClient] = []

    def start(server: tuple[str, int], nick: str, *extra: str) -> TerminalClient:
        client = TerminalClient(server, nick, tmp_path / f"term-{nick}", extra)
        clients.append(client)
        return client
    yield start
    for client in clients:
        client.close()


def no_punch(*args: object, **kwargs: object) -> Engine:
    """An engine that starts no session at join (to see a handshake start on demand): no punch
    (issue 10) and no chat layer, whose channel state goes to every peer it meets (issue 11)."""
    return Engine(*args, reach=ReachConfig(punch_at_join=False), chat=False,  # type: ignore[arg-type]
                  **kwargs)


def open_app(root: tk.Tk, tmp_path: Path, server: tuple[str, int], nick: str,
             **kwargs: object) -> App:
    """The window, connected through its connect screen (fields filled, Enter pressed)."""
    app = App(root, config_dir=tmp_path / "gui", **kwargs)  # type: ignore[arg-type]
    form = app.connect_frame
    form.server_var.set(f"{server[0]}:{server[1]}")
    form.nick_var.set(nick)
    press(form.nick_entry, "<Return>")
    pump(root, lambda: app.main_frame is not None or form.error_var.get().startswith(
        ("Cannot", "The", "Could")), WAIT, what="the connect outcome")
    assert app.main_frame is not None, form.error_var.get()
    return app


def send_from_gui(root: tk.Tk, app: App, peer: str | None, text: str) -> None:
    tab = app.tabs[peer]
    app.notebook.select(tab)
    root.update()
    type_text(tab.input.text, text)
    press(tab.input.text, "<Return>")
    assert tab.input.get() == ""


def test_gui_and_terminal_exchange_both_ways(root: tk.Tk, tmp_path: Path, server,
                                             terminal) -> None:
    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    app = open_app(root, tmp_path, server.address, "alice")
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    bob.wait_line(root, "-!- alice joined")
    send_from_gui(root, app, None, "hello from the window")
    bob.wait_line(root, "<alice> hello from the window")
    app.room.input.set("Привет, Боб! 😀🎉")            # no keysyms for these: insert, then Enter
    press(app.room.input.text, "<Return>")
    bob.wait_line(root, "<alice> Привет, Боб! 😀🎉")
    # Shift+Enter: one message over two lines (the terminal indents continuation lines)
    type_text(app.room.input.text, "two")
    press(app.room.input.text, "<Shift-Return>")
    type_text(app.room.input.text, "lines")
    press(app.room.input.text, "<Return>")
    bob.wait_line(root, "<alice> two")
    bob.wait_line(root, "  lines")
    bob.say("hi alice, Привет 👋")
    pump(root, lambda: "bob  hi alice, Привет 👋" in app.room.view.content(), WAIT,
         what="bob's message in the window")
    bob.say("first\\nsecond line")                    # the terminal's escaped line break
    pump(root, lambda: "bob  first\nsecond line" in app.room.view.content(), WAIT)
    assert "You are chatting as alice" in app.room.view.content()
    app.close()
    bob.wait_line(root, "-!- alice left")


def test_private_tab_opens_receives_and_counts_unread(root: tk.Tk, tmp_path: Path, server,
                                                      terminal) -> None:
    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    app = open_app(root, tmp_path, server.address, "alice")
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    bob.wait_line(root, "-!- alice joined")
    # bob writes privately: a tab opens by itself, in the background, with an unread count
    bob.say("/msg alice just between us 🤫")
    pump(root, lambda: "bob" in app.tabs and "just between us 🤫" in
         app.tabs["bob"].view.content(), WAIT, what="the private tab")
    assert app.notebook.tab(app.tabs["bob"], "text") == "bob (1)"
    assert app.current_tab() is app.room
    bob.say("/msg alice second")
    pump(root, lambda: app.notebook.tab(app.tabs["bob"], "text") == "bob (2)", WAIT)
    # double-clicking bob in the roster opens (selects) that tab and clears the count
    tree = app.roster.tree
    x, y, _w, h = tree.bbox("n:bob")
    for _ in range(2):   # two clicks in a row: Tk makes the second a <Double-1>
        tree.event_generate("<ButtonPress-1>", x=x + 10, y=y + h // 2)
        tree.event_generate("<ButtonRelease-1>", x=x + 10, y=y + h // 2)
    pump(root, lambda: app.current_tab() is app.tabs["bob"], what="the bob tab selected")
    assert app.notebook.tab(app.tabs["bob"], "text") == "bob"
    send_from_gui(root, app, "bob", "sure, only you")
    bob.wait_line(root, "*alice* sure, only you")
    # "Who is this?": bob's fingerprint from the real engine, and "Mark as verified"
    dialog = WhoisDialog(app, "bob")
    pump(root, lambda: not dialog.fetching, WAIT, what="the whois answer")
    fingerprint = dialog.fp_var.get()
    assert fingerprint and not fingerprint.startswith("(unknown"), fingerprint
    assert "Not verified" in dialog.state_var.get()
    dialog.verify_button.invoke()
    pump(root, lambda: dialog.state_var.get().startswith("✔ Verified"), WAIT)
    dialog.top.destroy()
    app.close()


def test_connect_errors_and_window_stays_responsive(root: tk.Tk, tmp_path: Path, server,
                                                    terminal) -> None:
    # a "server" that accepts TCP but never says a word: the worker waits out its timeout
    silent = socket.create_server(("127.0.0.1", 0))
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        root.after(20, tick)
    try:
        app = App(root, config_dir=tmp_path / "gui", connect_timeout=1.5)
        form = app.connect_frame
        form.server_var.set(f"127.0.0.1:{silent.getsockname()[1]}")
        form.nick_var.set("alice")
        root.after(20, tick)
        press(form.nick_entry, "<Return>")
        assert str(form.button.cget("state")) == "disabled"
        pump(root, lambda: form.error_var.get().startswith("Cannot reach"), 6.0,
             what="the unreachable-server error")
    finally:
        silent.close()
    waited = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert ticks[-1] - ticks[0] >= 1.2 and max(waited) < 0.5, waited   # never froze
    assert "127.0.0.1" in form.error_var.get()
    assert str(form.button.cget("state")) == "normal"
    # a port where nobody listens at all
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    dead_port = free.getsockname()[1]
    free.close()
    form.server_var.set(f"127.0.0.1:{dead_port}")
    press(form.nick_entry, "<Return>")
    pump(root, lambda: form.error_var.get().startswith("Cannot reach"), 6.0)
    # nickname taken
    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    form.server_var.set(f"{server.host}:{server.port}")
    form.nick_var.set("bob")
    press(form.nick_entry, "<Return>")
    pump(root, lambda: "already taken" in form.error_var.get(), WAIT,
         what="the nickname-taken error")
    assert "“bob”" in form.error_var.get()
    # and the same screen then connects fine with another nickname
    form.nick_var.set("alice")
    press(form.nick_entry, "<Return>")
    pump(root, lambda: app.main_frame is not None, WAIT, what="the main window")
    app.close()


def test_no_tk_call_off_the_main_thread(tmp_path: Path, server, terminal) -> None:
    root = shown_root()
    real_root = next(root)
    recorder = TkThreadRecorder(real_root.tk)
    real_root.tk = recorder  # type: ignore[assignment]   # before any widget exists
    try:
        bob = terminal(server.address, "bob")
        bob.wait_registered(real_root)
        app = open_app(real_root, tmp_path, server.address, "alice")
        assert threading.active_count() >= 2            # the engine thread is running
        pump(real_root, lambda: "bob" in app.roster.nicks, WAIT)
        bob.wait_line(real_root, "-!- alice joined")
        bob.say("room message")
        bob.say("/msg alice private message")
        pump(real_root, lambda: "bob" in app.tabs and "private message" in
             app.tabs["bob"].view.content(), WAIT)
        send_from_gui(real_root, app, None, "answer")
        bob.wait_line(real_root, "<alice> answer")
        bob.close()
        pump(real_root, lambda: "bob left" in app.room.view.content(), WAIT)
        app.close()
    finally:
        for _ in root:
            pass
    assert recorder.calls > 100
    assert recorder.off_main == []


def test_python_m_client_opens_the_window_connects_and_quits(tmp_path: Path, server) -> None:
    """The real entry point: window, auto-connect, Ctrl+Q typed through X (XTEST) -> QUIT."""
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is not installed (apt-get install xdotool)")
    if not os.environ.get("DISPLAY"):
        pytest.skip("no DISPLAY (pytest-xvfb starts Xvfb when it is installed)")
    config = tmp_path / "zed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "--server", f"{server.host}:{server.port}",
         "--nick", "zed", "--config-dir", str(config)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        assert server.wait_for_log(r"join zed ", timeout=WAIT), "zed never registered"
        window = ""
        deadline = time.monotonic() + WAIT
        while not window and time.monotonic() < deadline:
            found = subprocess.run(["xdotool", "search", "--name", "OpenLChat.*zed"],
                                   capture_output=True, text=True)
            window = found.stdout.split()[0] if found.stdout.split() else ""
            time.sleep(0.05)
        assert window, "the connected window never showed up"
        subprocess.run(["xdotool", "windowfocus", "--sync", window], check=True, timeout=5)
        subprocess.run(["xdotool", "key", "--clearmodifiers", "ctrl+q"], check=True, timeout=5)
        assert proc.wait(10) == 0
        assert server.wait_for_log(r"leave zed \(quit\)", timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        errors = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
    assert "Traceback" not in errors, errors
    saved = json.loads((config / "settings.json").read_text(encoding="utf-8"))
    assert saved["nick"] == "zed" and saved["server"] == f"{server.host}:{server.port}"


def test_impostor_with_another_key_is_flagged(root: tk.Tk, tmp_path: Path, server,
                                              terminal) -> None:
    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    app = open_app(root, tmp_path, server.address, "alice")
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    bob.say("the real bob")
    pump(root, lambda: "bob  the real bob" in app.room.view.content(), WAIT)
    bob.close()
    pump(root, lambda: "bob" not in app.roster.nicks, WAIT, what="bob gone")
    # someone else takes the nickname, with a fresh identity key (another config dir)
    impostor = TerminalClient(server.address, "bob", tmp_path / "impostor")
    try:
        impostor.wait_registered(root)
        pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="the new bob")
        impostor.say("trust me, I am bob")
        pump(root, lambda: "trust me, I am bob" in app.room.view.content(), WAIT)
        pump(root, lambda: app.roster.text_of("bob").startswith("⚠"), WAIT,
             what="the roster marker")
        text = app.room.view.content()
        assert "bob’s identity key has CHANGED" in text
        flagged = [line for line in text.split("\n") if "trust me, I am bob" in line]
        assert flagged and "bob  [" in flagged[0], flagged   # the message carries its warning
        assert app.room.view.text.tag_ranges("error")
        whois = WhoisDialog(app, "bob")
        pump(root, lambda: "CHANGED" in whois.state_var.get(), WAIT, what="the whois answer")
        whois.top.destroy()
    finally:
        impostor.close()
        app.close()


def test_status_bar_follows_the_server_and_peers_keep_chatting(root: tk.Tk, tmp_path: Path,
                                                               server, terminal) -> None:
    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    app = open_app(root, tmp_path, server.address, "alice")
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    assert app.status_var.get() == f"Connected to {server.host}:{server.port} as alice · 2 online"
    server.kill()
    pump(root, lambda: app.status_var.get().startswith("Server unreachable"), WAIT,
         what="the server-lost status")
    assert app.status_var.get() == "Server unreachable (peers still reachable) · 2 online"
    assert "(server unreachable)" in root.title()
    bob.say("still here without the server")
    pump(root, lambda: "still here without the server" in app.room.view.content(), WAIT)
    send_from_gui(root, app, None, "me too")
    bob.wait_line(root, "<alice> me too")
    server.start()                                   # same port, same database
    pump(root, lambda: app.status_var.get().startswith("Connected"), WAIT,
         what="the server-back status")
    assert "The server is reachable again." in app.room.view.content()
    app.close()


def test_not_delivered_is_shown_against_the_message(root: tk.Tk, tmp_path: Path, server,
                                                    terminal) -> None:
    from client.engine import Engine

    def quick_engine(*args: object, **kwargs: object) -> Engine:
        return Engine(*args, deadline=1.0, **kwargs)  # type: ignore[arg-type]

    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    app = open_app(root, tmp_path, server.address, "alice", engine_factory=quick_engine)
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    send_from_gui(root, app, None, "first, delivered")
    bob.wait_line(root, "<alice> first, delivered")
    bob.proc.kill()                                 # gone without a QUIT
    bob.proc.wait()
    send_from_gui(root, app, None, "are you there?")
    pump(root, lambda: "are you there?  ✗ not delivered to bob" in app.room.view.content(),
         WAIT, what="the not-delivered mark")
    assert "first, delivered  ✗" not in app.room.view.content()
    app.close()


def test_files_both_ways_between_the_window_and_a_peer(root: tk.Tk, tmp_path: Path, server,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Accept in the window, progress, done lines; and Send file… to a peer who accepts."""
    from client import wiring
    from client.config import save_json, settings_path
    from client.engine import Engine
    from client.events import FileOffered
    from client.gui import file_handlers

    bob = Engine(server.address, "bob", config_dir=tmp_path / "bob")
    mine, theirs = tmp_path / "alice-downloads", tmp_path / "bob-downloads"
    save_json(settings_path(tmp_path / "gui"), {"downloads": str(mine)})
    try:
        bob.start()
        wiring.plug_in_files(bob, theirs)
        app = open_app(root, tmp_path, server.address, "alice")
        assert app.engine.files is not None
        pump(root, lambda: "alice" in bob.roster(), WAIT, what="alice in bob's roster")
        bob.send_room("hello, here comes a file")              # opens the encrypted session
        pump(root, lambda: "here comes a file" in app.room.view.content(), WAIT)
        # bob -> the window: an offer with Accept/Decline, then progress, then done
        payload = os.urandom(3 * 1024 * 1024 + 17)
        source = tmp_path / "карта 😀.bin"
        source.write_bytes(payload)
        bob.offer_files("alice", [source])
        row = pump(root, lambda: next(iter(app.files.rows.values()), None), WAIT,
                   what="the offer row")
        assert "bob offers “карта 😀.bin” (3.0 MiB)" in row.label.get()
        _button(row.frame, "Accept").invoke()
        pump(root, lambda: "Received “карта 😀.bin” from bob" in app.tabs["bob"].view.content(),
             WAIT, what="the received line")
        assert (mine / "карта 😀.bin").read_bytes() == payload
        assert not app.files.rows                              # the row went away
        # the window -> bob: Send file… picks a file, bob accepts, the window says it was sent
        outgoing = tmp_path / "notes.txt"
        outgoing.write_text("привет, bob\n", encoding="utf-8")
        monkeypatch.setattr(file_handlers.filedialog, "askopenfilenames",
                            lambda **_kw: (str(outgoing),))
        app.send_file("bob")
        offered = pump(root, lambda: _next_event(bob, FileOffered), WAIT, what="bob's offer")
        bob.accept_file(offered.transfer_id)
        pump(root, lambda: "“notes.txt” was sent to bob." in app.tabs["bob"].view.content(),
             WAIT, what="the sent line")
        pump(root, lambda: (theirs / "notes.txt").exists(), WAIT)
        assert (theirs / "notes.txt").read_text(encoding="utf-8") == "привет, bob\n"
        app.close()
    finally:
        bob.close()


def _button(frame: tk.Misc, text: str) -> ttk.Button:
    return next(w for w in frame.winfo_children()
                if isinstance(w, ttk.Button) and str(w.cget("text")) == text)


def _next_event(engine: object, kind: type) -> object | None:
    """The next event of ``kind`` on an in-test engine's queue (others are dropped)."""
    while True:
        try:
            event = engine.events.get_nowait()  # type: ignore[attr-defined]
        except queue.Empty:
            return None
        if isinstance(event, kind):
            return event


def test_whois_fetches_the_key_and_verified_shows_in_the_next_run(root: tk.Tk, tmp_path: Path,
                                                                  server, terminal) -> None:
    bob = terminal(server.address, "bob", "--no-punch", "--no-chat")
    bob.wait_registered(root)
    bob_fingerprint = fingerprint(bytes(identity.load_or_create(tmp_path / "term-bob")
                                        .verify_key))
    # without the punch at join (issue 10), which would bring bob's key before anyone asks
    app = open_app(root, tmp_path, server.address, "alice", engine_factory=no_punch)
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    assert app.roster.text_of("bob") == "bob"
    # no message exchanged: the dialog opens at once, the key comes with a handshake
    dialog = WhoisDialog(app, "bob")
    assert dialog.fetching and dialog.fp_var.get() == "(fetching…)"
    pump(root, lambda: not dialog.fetching, WAIT, what="the whois answer")
    assert dialog.fp_var.get() == bob_fingerprint
    dialog.verify_button.invoke()
    pump(root, lambda: app.roster.text_of("bob") == "✔ bob", WAIT)
    dialog.top.destroy()
    app.close()
    # the next run (same config directory): ✔ as soon as the roster shows, nothing said
    root2 = new_root()
    try:
        app2 = open_app(root2, tmp_path, server.address, "alice")
        assert app2.roster.text_of("bob") == "✔ bob"
        bob.close()
        pump(root2, lambda: "bob" not in app2.roster.nicks, WAIT, what="bob gone")
        bob2 = terminal(server.address, "bob")  # the same config dir: the same key
        bob2.wait_registered(root2)
        pump(root2, lambda: "bob" in app2.roster.nicks, WAIT, what="bob back")
        assert app2.roster.text_of("bob") == "✔ bob"  # on join too
        app2.close()
    finally:
        with contextlib.suppress(tk.TclError):
            root2.destroy()


def test_connect_screen_takes_an_ipv6_server(root: tk.Tk, tmp_path: Path, server_factory,
                                             terminal) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    srv = server_factory(ping_interval=1.0, start=False)
    srv.host = "::1"
    srv.start()
    bob = terminal(srv.address, "bob")
    bob.wait_registered(root)
    app = App(root, config_dir=tmp_path / "gui")
    form = app.connect_frame
    form.server_var.set(f"[::1]:{srv.port}")
    form.nick_var.set("alice")
    press(form.nick_entry, "<Return>")
    pump(root, lambda: app.main_frame is not None or form.error_var.get().startswith(
        ("Cannot", "The", "Could")), WAIT, what="the connect outcome")
    assert app.main_frame is not None, form.error_var.get()
    assert f"on [::1]:{srv.port}." in app.room.view.content()
    bob.say("hello from bob over IPv6")
    pump(root, lambda: "hello from bob over IPv6" in app.room.view.content(), WAIT)
    app.close()


def test_disconnect_then_reconnect_at_once_keeps_the_nickname(root: tk.Tk, tmp_path: Path,
                                                               server) -> None:
    """Connect right after Disconnect: the old engine's QUIT (and its saved session) comes
    first, so the server never answers NICK_TAKEN for our own nickname."""
    app = App(root, config_dir=tmp_path / "gui")
    for _ in range(4):
        app.connect(f"127.0.0.1:{server.port}", "alice")
        pump(root, lambda: not app.connecting(), 15.0, what="connected")
        assert app.main_frame is not None, app.connect_frame.error_var.get()
        assert app.nickname == "alice"
        app.disconnect()
    app.connect(f"127.0.0.1:{server.port}", "alice")
    pump(root, lambda: not app.connecting(), 15.0, what="connected again")
    assert app.main_frame is not None, app.connect_frame.error_var.get()
    app.disconnect()
