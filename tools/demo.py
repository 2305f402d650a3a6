"""Record the README's demo: two real windows chatting, under Xvfb, into ``docs/demo.gif``.

    python tools/demo.py [OUT]          # default: docs/demo.gif

A real ``server.py`` and two real clients (the Tk window, the real engine, end-to-end
encryption, file transfer over TCP) on this machine: alice and bob say hello, bob opens a
private tab, alice sends bob a file and he opens it, then the directory server is killed and
the two go on chatting as if nothing happened. Each step is captured with ImageMagick's
``import`` and the frames are joined into an animated GIF by Pillow (small: flat colours,
only the changed part of each frame is stored).

Needs Xvfb (started here when ``DISPLAY`` is unset), ImageMagick and Pillow
(``apt-get install xvfb imagemagick``; ``pip install -r requirements.txt``).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tkinter as tk
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from screenshots import start_xvfb  # noqa: E402

log = logging.getLogger("demo")

WINDOW = (780, 620)          # each person's window; side by side on the screen
SCREEN = (WINDOW[0] * 2, WINDOW[1] + 80)
CAPTION_H = 40
_LISTENING = re.compile(r"listening on (\S+):(\d+) \(tcp\+udp\)")


class Server:
    """``server.py`` in a subprocess, started again on the same port and database."""

    def __init__(self, db: Path) -> None:
        self.db, self.port = db, 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port",
             str(self.port), "--db", str(self.db), "--ping-interval", "2",
             "--stats-interval", "0"], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            found = _LISTENING.search(line)
            if found:
                self.port = int(found[2])
                break
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)


class Recorder:
    """Frames of the whole virtual screen, each shown for a given time, plus a caption."""

    def __init__(self, roots: list[tk.Tk]) -> None:
        self.roots = roots
        self.frames: list[tuple[Any, int]] = []
        self.caption = ""

    def pump(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for root in self.roots:
                root.update()
            time.sleep(0.01)

    def until(self, condition: Any, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise RuntimeError(f"demo: timed out waiting for {condition}")
            self.pump(0.05)

    def shot(self, ms: int = 900) -> None:
        from PIL import Image
        self.pump(0.15)
        first = self.roots[0]   # its menu bar sits above winfo_rooty's 0
        height = first.winfo_rooty() + first.winfo_height()
        png = subprocess.run(["import", "-window", "root", "-crop",
                              f"{SCREEN[0]}x{height}+0+0", "+repage", "png:-"],
                             check=True, capture_output=True).stdout
        image = Image.open(io.BytesIO(png)).convert("RGB")
        self.frames.append((self._captioned(image), ms))

    def _captioned(self, image: Any) -> Any:
        from PIL import Image, ImageDraw, ImageFont
        out = Image.new("RGB", (image.width, image.height + CAPTION_H), "#202020")
        out.paste(image, (0, 0))
        draw = ImageDraw.Draw(out)
        try:
            font = ImageFont.truetype("DejaVuSans-Bold.ttf", 18)
        except OSError:
            font = ImageFont.load_default()
        draw.text((16, image.height + 10), self.caption, fill="#ffffff", font=font)
        return out

    def save(self, path: Path) -> int:
        first, *rest = [frame for frame, _ms in self.frames]
        small = [f.resize((f.width * 3 // 4, f.height * 3 // 4)) for f in [first, *rest]]
        path.parent.mkdir(parents=True, exist_ok=True)
        small[0].save(path, save_all=True, append_images=small[1:], loop=0, optimize=True,
                      duration=[ms for _f, ms in self.frames], disposal=1)
        return path.stat().st_size


def type_into(rec: Recorder, tab: Any, text: str) -> None:
    """Type ``text`` a few characters per frame, then send it."""
    step = max(4, len(text) // 3)
    for end in range(step, len(text), step):
        tab.input.set(text[:end])
        rec.shot(180)
    tab.input.set(text)
    rec.shot(300)
    tab.input.submit()


def say(rec: Recorder, tab: Any, text: str, reader: Any, ms: int = 1200) -> None:
    """Type and send ``text`` in ``tab``; wait until ``reader`` (a MessageView) shows it."""
    type_into(rec, tab, text)
    rec.until(lambda: text in reader.content())
    rec.shot(ms)


def scenario(rec: Recorder, server: Server, alice: Any, bob: Any, tmp: Path) -> None:
    from PIL import Image, ImageDraw
    rec.caption = "One person runs the tiny directory server; each friend opens the client"
    alice.connect_frame.server_var.set(f"127.0.0.1:{server.port}")
    alice.connect_frame.nick_var.set("alice")
    bob.connect_frame.server_var.set(f"127.0.0.1:{server.port}")
    bob.connect_frame.nick_var.set("bob")
    rec.shot(1800)
    alice.connect_frame.submit()
    rec.until(lambda: alice.main_frame is not None)
    bob.connect_frame.submit()
    rec.until(lambda: bob.main_frame is not None and "bob" in alice.roster.nicks)
    rec.caption = "Messages go straight from person to person, end-to-end encrypted"
    rec.shot(1400)
    say(rec, alice.room, "Hi bob! Ready for tonight? 🎮", bob.room.view, 900)
    say(rec, bob.room, "Hey alice 😀 bringing snacks 🍕", alice.room.view)

    rec.caption = "A private tab: only the two of them see it"
    tab = bob.open_private("alice")
    rec.shot(700)
    type_into(rec, tab, "psst, can you bring the HDMI cable? 🙏")
    rec.until(lambda: "bob" in alice.tabs)
    rec.shot(1200)
    alice.notebook.select(alice.tabs["bob"])
    say(rec, alice.tabs["bob"], "Sure, I have two 👌", bob.tabs["alice"].view)

    rec.caption = "Files go directly too: offer, accept, open"
    picture = tmp / "party-map.png"
    image = Image.new("RGB", (1600, 1200), "#f4f1e8")
    ImageDraw.Draw(image).rectangle((200, 200, 1400, 1000), outline="#1c7ed6", width=12)
    image.save(picture)
    alice.offer_paths("bob", [picture])
    rec.until(lambda: bob.files.rows)
    rec.shot(1600)
    tid = next(iter(bob.files.rows))
    bob.files._answer(tid, True)
    rec.until(lambda: "Show in folder" in bob.tabs["alice"].view.link_names())
    rec.shot(2000)

    rec.caption = "The directory server is killed..."
    server.kill()
    rec.shot(1200)
    rec.until(lambda: not alice.server_online and not bob.server_online, timeout=30)
    rec.caption = "...and the chat goes on: people already in the list still reach each other"
    rec.shot(1800)
    alice.notebook.select(alice.room)
    bob.notebook.select(bob.room)
    say(rec, alice.room, "Did the server just go down?", bob.room.view, 900)
    say(rec, bob.room, "No idea, didn't notice 😎", alice.room.view, 2600)
    rec.caption = "The server comes back; the clients register again by themselves"
    server.start()
    rec.until(lambda: alice.server_online and bob.server_online, timeout=40)
    rec.shot(3000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "demo.gif")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    if not shutil.which("import"):
        sys.exit("demo: ImageMagick's `import` is needed (apt-get install imagemagick)")
    xvfb = start_xvfb(*SCREEN)
    server = None
    apps: list[Any] = []
    try:
        from client.gui import App
        with tempfile.TemporaryDirectory() as tmp_text:
            tmp = Path(tmp_text)
            server = Server(tmp / "demo.db")
            server.start()
            roots = []
            for i, name in enumerate(("alice", "bob")):
                root = tk.Tk(className="OpenLChat")
                root.geometry(f"{WINDOW[0]}x{WINDOW[1]}+{i * WINDOW[0]}+0")
                app = App(root, config_dir=tmp / name)
                app.set_downloads(tmp / name / "Downloads")
                roots.append(root)
                apps.append(app)
            rec = Recorder(roots)
            rec.pump(0.5)
            scenario(rec, server, apps[0], apps[1], tmp)
            size = rec.save(args.out)
            print(f"demo: wrote {args.out} ({len(rec.frames)} frames, {size / 1e6:.2f} MB)")
            for app in apps:
                app.close()
    finally:
        if server is not None:
            server.kill()
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
