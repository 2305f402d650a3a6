"""Render screenshots of the Tk client to PNG, so a person can look without running it.

    python tools/screenshots.py [OUT_DIR]        # default: screenshots/

Writes ``connect.png`` (the connect screen, with an error), ``room.png`` (a busy room with
Cyrillic and emoji, a key-change warning, a message not delivered, a file offer and a
transfer in progress; the channel list with unread counts and a mention, the topic bar, the
history of the last run above the "new messages" marker), ``private.png`` (a private tab with
messages waiting, delivered later and not delivered), ``channel.png`` (another channel: its
members, one away), ``join.png`` (the "Join channel…" dialog refusing a name), ``whois.png``
(the "Who is this?" dialog after a key change), ``room-dark.png`` and ``channel-dark.png``
(the dark theme).

The real widgets (client/gui/) are fed engine events through ``App.handle``, exactly what
the engine thread would deliver, from an offline stand-in engine (no server, no network), so
the pictures are the same on every run. Needs a display: if ``DISPLAY`` is unset it starts
``Xvfb`` itself (Debian: ``apt-get install xvfb``). Captures with ImageMagick's ``import``
(Debian: ``apt-get install imagemagick``). Emoji need a font that has them (on Linux Tk uses
monochrome fonts: ``apt-get install fonts-symbola``).
"""

from __future__ import annotations

import argparse
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client import events as ev  # noqa: E402
from client.chat import events as cev  # noqa: E402
from client.errors import FilesUnavailable  # noqa: E402
from tests.chat_fake import FakeChat, line  # noqa: E402

log = logging.getLogger("screenshots")

SIZE = (960, 640)
ROSTER = ("bob", "carol", "dave", "Вася", "Алёна", "émilie")


class OfflineEngine:
    """Just enough of ``client.engine.Engine`` for the window: ids, roster, whois; no network."""

    def __init__(self, server: tuple[str, int], nickname: str, **_kwargs: Any) -> None:
        self.server = server
        self.nickname = nickname
        self.server_online = True
        self.events: queue.Queue[object] = queue.Queue()
        self._ids = itertools.count(1)
        self.chat = FakeChat(nickname, self.events, list(ROSTER))
        earlier = int(time.time() * 1000) - 20 * 3600 * 1000
        self.chat.store(
            line("bob", "#room", "see you all tomorrow then 👋", ts_ms=earlier),
            line("alice", "#room", "bye! I'll bring the cables", ts_ms=earlier + 60_000),
            line("carol", "#games", "who has the map pack?", ts_ms=earlier + 90_000),
            line("Вася", "#games", "у меня есть, скину завтра", ts_ms=earlier + 120_000),
            line("alice", "carol", "did you get the projector?", ts_ms=earlier + 150_000))
        self.chat.topics["#games"] = cev_topic("#games", "Tonight: Quake 3 CTF at 21:00 🎯",
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
        return ev.Whois(nick, "7F3A 91C0 22DE 0B13 5A6E 2C44 9D01 E8B7", nick == "bob",
                        key_changed=nick == "dave")

    def fetch_identity(self, nick: str, on_result: Any, timeout: float = 1.5) -> None:
        on_result(self.whois(nick))

    def own_fingerprint(self) -> str:
        return "AHYS UABU 7OHJ TQIL BV34 54QH XDFX AVTO"

    def is_verified(self, nick: str) -> bool:
        return nick == "bob"

    def mark_verified_later(self, nick: str, on_result: Any) -> None:
        on_result(True)

    def attach_files(self, downloads: Path) -> None:
        raise FilesUnavailable("offline stand-in: no file transfer")

    def offer_files(self, nickname: str, paths: list[Path]) -> list[int]:
        raise FilesUnavailable("offline stand-in: no file transfer")

    def accept_file(self, transfer_id: int) -> None:
        pass

    def decline_file(self, transfer_id: int) -> None:
        pass

    def cancel_file(self, transfer_id: int) -> None:
        pass

    def close(self) -> None:
        pass


def cev_topic(channel: str, text: str, setter: str) -> Any:
    from client.chat.api import TopicInfo
    return TopicInfo(channel, text, setter)


def start_xvfb() -> subprocess.Popen[bytes] | None:
    """Start Xvfb on a free display number when there is no display; None if not needed."""
    if os.environ.get("DISPLAY") or sys.platform == "win32":
        return None
    if not shutil.which("Xvfb"):
        sys.exit("screenshots: no DISPLAY and no Xvfb (apt-get install xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0",
                             f"{SIZE[0] + 64}x{SIZE[1] + 64}x24", "-nolisten", "tcp"],
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


def capture(root: Any, path: Path) -> None:
    root.update()
    # the whole screen, cropped to the toplevel including its menu bar (which lives in the
    # outer wrapper window, above the root's own area)
    _size, x_text, y_text = root.geometry().replace("-", "+-").split("+", 2)
    x, y = int(x_text), int(y_text.split("+")[-1])   # the wrapper's corner
    width = root.winfo_width()
    height = root.winfo_rooty() - y + root.winfo_height()
    subprocess.run(["import", "-window", "root", "-crop", f"{width}x{height}+{x}+{y}",
                    "+repage", str(path)], check=True)
    log.info("wrote %s", path)


def show_tooltip(app: Any, nick: str) -> None:
    """The away text of ``nick`` as hovering its row shows it."""
    tree = app.roster.tree
    x, y, _w, h = tree.bbox(f"n:{nick}")
    tree.event_generate("<Motion>", x=x + 30, y=y + h // 2)
    settle(app.root, 0.7)


def feed(app: Any, events: list[object]) -> None:
    for event in events:
        app.handle(event)


def busy_room(app: Any) -> None:
    now = time.time()
    view = app.room.view
    view.add_message("bob", "Hi all! Is everyone here for the LAN party? 🎮", when=now - 300)
    app.handle(ev.Joined("Алёна"))
    view.add_message("Вася", "Привет! Да, уже подключился 👍 Пинг отличный", when=now - 280)
    view.add_message("Алёна", "Всем привет 😀 Кто-нибудь взял удлинитель? 🔌", when=now - 250)
    view.add_message("carol", "Bringing snacks 🍕🍩 — and the projector.\nSecond line of "
                     "the same message, kept under the text.", when=now - 200)
    view.add_message("alice", "Great, we start at 20:00 ⏰", when=now - 180, own=True, msg_id=1)
    view.add_message("émilie", "Ça marche ! À tout à l’heure 🎉", when=now - 150)
    app.handle(ev.KeyChanged("dave", "51C2 0E7D 9A10 44F3", "B803 7C19 E2A4 0D5E"))
    view.add_message("dave", "hey, it's me, new laptop", when=now - 120,
                     warning="UNVERIFIED KEY CHANGE")
    view.add_message("alice", "dave, read me your fingerprint first 🙂", when=now - 60,
                     own=True, msg_id=2)
    feed(app, [ev.NotDelivered("dave", "dave, read me your fingerprint first", 2),
               ev.Left("émilie"),
               ev.FileOffered(7, "bob", "карта_уровня.zip", 48_200_000),
               ev.FileProgress(8, "Вася", "фото 😀.jpg", 1_300_000, 3_100_000, 850_000.0,
                               True)])


def channels(app: Any) -> None:
    """Unread lines in #games, a mention in #dev, someone away."""
    now = int(time.time() * 1000) - 120_000
    for who, text in (("carol", "map pack is on the share 📦"), ("dave", "CTF or deathmatch?"),
                      ("Вася", "CTF конечно 🚩")):
        app.handle(cev.ChannelMessage("#games", who, text, line(who, "#games", text, ts_ms=now)))
        now += 40_000
    text = "alice, can you review the reconnect patch? 🙏"
    app.handle(cev.ChannelMessage("#dev", "émilie", text, line("émilie", "#dev", text,
                                                              ts_ms=now)))
    app.handle(cev.AwayChanged("dave", "grabbing pizza 🍕"))
    text = "alice, can you bring the network switch? 🔌"
    app.handle(cev.ChannelMessage("#room", "Алёна", text, line("Алёна", "#room", text)))


def private_states(app: Any) -> Any:
    """Messages to carol, who went offline: one delivered later, one waiting, one failed."""
    chat = app.engine.chat
    chat.online.discard("carol")
    tab = app.open_private("carol")
    for text in ("Sure! I have two 👌", "and a spare power strip", "are you still coming?"):
        app.run_input(tab, text)
    settle(app.root, 0.1)
    sent = chat.stored["carol"][-3:]
    app.handle(cev.DeliveredLater("carol", sent[0].text, sent[0].msg_id))
    app.handle(cev.Failed("carol", sent[2].text, sent[2].msg_id))
    tab.input.set("See you at 8 🕗")
    return tab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("screenshots"),
                        help="directory for the PNG files (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not shutil.which("import"):
        sys.exit("screenshots: ImageMagick's `import` is needed (apt-get install imagemagick)")
    xvfb = start_xvfb()
    try:
        import tkinter as tk

        from client.errors import ServerUnreachable
        from client.gui import App, WhoisDialog
        from client.wording import describe_error

        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as config:
            root = tk.Tk(className="OpenLChat")
            root.geometry(f"{SIZE[0]}x{SIZE[1]}+0+0")
            app = App(root, config_dir=Path(config), engine_factory=OfflineEngine)
            root.geometry(f"{SIZE[0]}x{SIZE[1]}+0+0")
            app.connect_frame.server_var.set("192.168.1.10")
            app.connect_frame.nick_var.set("alice")
            app.connect_frame.show_error(describe_error(
                ServerUnreachable("cannot reach 192.168.1.10:7700: [Errno 111] Connection "
                                  "refused"), "alice", "192.168.1.10:7700"))
            settle(root)
            capture(root, args.out / "connect.png")

            app.connect("192.168.1.10", "alice")
            while app.main_frame is None:
                settle(root, 0.05)
            settle(root)
            busy_room(app)
            app.handle(ev.PrivateMessage("carol", "psst — can you bring a spare HDMI cable? 🙏"))
            channels(app)
            settle(root)
            app.roster.tree.selection_set("n:carol")
            app.room.view.text.see("end")
            settle(root, 0.1)
            capture(root, args.out / "room.png")

            private_states(app)
            settle(root)
            capture(root, args.out / "private.png")

            app.open_channel("#games")
            settle(root)
            show_tooltip(app, "dave")
            capture(root, args.out / "channel.png")
            app.roster.tooltip.hide()

            join = app.open_join_dialog()
            join.top.geometry("+200+140")
            join.name_var.set("games")
            settle(root)
            capture(join.top, args.out / "join.png")
            join.top.destroy()

            app.notebook.select(app.room)
            settle(root, 0.1)
            app.roster.tree.selection_set("n:bob")
            dialog = WhoisDialog(app, "dave")
            dialog.top.geometry("+120+120")
            settle(root)
            capture(dialog.top, args.out / "whois.png")
            dialog.top.destroy()

            app.notebook.select(app.room)
            app.set_theme("dark")
            settle(root)
            capture(root, args.out / "room-dark.png")
            app.open_channel("#games")
            settle(root)
            show_tooltip(app, "dave")
            capture(root, args.out / "channel-dark.png")
            app.roster.tooltip.hide()
            app.set_theme("light")
            app.close()
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
