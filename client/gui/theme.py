"""Colours and the light/dark look of the Tk face.

The nickname palette is pure data (no Tk) so tests can check contrast on both backgrounds;
``apply_theme`` switches sv-ttk and re-colours the plain Tk widgets sv-ttk does not style.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Mid-luminance colours: each keeps a contrast ratio >= 3.3 on both the light (#fafafa) and the
# dark (#1c1c1c) message background.  Reds are left out: red means "error / key change".
NICK_PALETTE: tuple[str, ...] = (
    "#d9480f", "#0c8599", "#087f5b", "#5c940d", "#e64980",
    "#be4bdb", "#7950f2", "#4263eb", "#1c7ed6", "#2b8a3e",
)


@dataclass(frozen=True)
class Colours:
    """What the message view, input and roster need for one theme."""
    name: str
    background: str
    foreground: str
    muted: str          # timestamps, join/leave lines
    own: str            # your own nickname
    own_background: str  # your own messages are set apart by a faint band
    error: str          # key change, not delivered, failures
    warning_background: str
    select: str


THEMES: dict[str, Colours] = {
    "light": Colours("light", "#fafafa", "#1c1c1c", "#6b6b6b", "#005fb8", "#eaf2fb",
                     "#c42b1c", "#fde7e9", "#b3d7f3"),
    "dark": Colours("dark", "#1c1c1c", "#fafafa", "#9a9a9a", "#57a9ff", "#22303d",
                    "#ff6b5e", "#442726", "#264f78"),
}


def nick_colour(nickname: str) -> str:
    """The same colour for a nickname in every run and on every machine (crc32, not hash())."""
    return NICK_PALETTE[zlib.crc32(nickname.encode("utf-8")) % len(NICK_PALETTE)]


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def font(widget: object, named: str = "TkDefaultFont", size: int | None = None,
         *styles: str) -> tuple[object, ...]:
    """A font tuple in the family Tk's named font resolves to on this system (a named font's
    name is not a family: ``("TkDefaultFont", 11)`` would fall back to some other face)."""
    from tkinter import font as tkfont
    base = tkfont.nametofont(named, root=widget)  # type: ignore[arg-type]
    return (base.actual("family"), size or base.actual("size"), *styles)


def normalise_theme(name: object) -> str:
    return name if name in THEMES else "light"


def apply_theme(root: object, name: str) -> Colours:
    """Switch sv-ttk to ``name`` on ``root`` (a tkinter.Tk); quietly keeps the default ttk look
    if sv-ttk cannot be loaded.  Returns the colours for the plain Tk widgets."""
    name = normalise_theme(name)
    try:
        import sv_ttk
        sv_ttk.set_theme(name, root)  # type: ignore[arg-type]
    except Exception as exc:  # a missing or broken theme must never stop the chat
        log.warning("sv-ttk theme unavailable, using the default ttk look: %s", exc)
    configure_styles(root)
    return THEMES[name]


def colour_menu(menu: object, colours: Colours) -> None:
    """Plain Tk menus (X11) do not follow sv-ttk: give them the theme's colours (Windows and
    macOS draw their own menus and ignore this)."""
    c = colours
    menu.configure(background=c.background, foreground=c.foreground,  # type: ignore[attr-defined]
                   activebackground=c.select, activeforeground=c.foreground,
                   selectcolor=c.foreground, borderwidth=0, relief="flat")


def configure_styles(root: object) -> None:
    """Our own ttk styles; a theme switch forgets them (styles belong to one theme)."""
    from tkinter import ttk
    style = ttk.Style(root)  # type: ignore[arg-type]
    style.configure("Status.TLabel", padding=(10, 4))
    style.configure("Link.TLabel", padding=(0, 0))


def close_icon(root: object, colour: str, size: int = 14) -> object:
    """A small "×" drawn pixel by pixel (no image file), for closable tabs."""
    import tkinter as tk
    image = tk.PhotoImage(master=root, width=size + 6, height=size)  # type: ignore[arg-type]
    margin = 3
    for i in range(margin, size - margin):
        for offset in (0, 1):    # two pixels thick
            j = min(size - margin - 1, i + offset)
            image.put(colour, (i + 6, j))
            image.put(colour, (size - 1 - i + 6, j))
    return image
