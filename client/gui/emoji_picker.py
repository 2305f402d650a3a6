"""The emoji picker on the input line: categories, a search by name, a click inserts.

Opens under the 🙂 button (or Ctrl+E in the input); Escape, a click elsewhere or a pick closes
it. ``search`` is pure (tested without a display).
"""

from __future__ import annotations

import contextlib
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.gui.emoji_art import EmojiArt, pixel_size
from client.gui.theme import Colours

COLUMNS = 9
# What people use most, by category (like Telegram's and Discord's pickers, much shorter).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("Smileys", "😀😃😄😁😆😅😂🤣😊😇🙂🙃😉😌😍🥰😘😗😋😛😜🤪😝🤑🤗🤭🤫🤔🤐🤨😐😑😶😏😒🙄"
                "😬😮‍💨🤥😔😪🤤😴😷🤒🤕🤢🤮🥵🥶🥴😵🤯🤠🥳😎🤓🧐😕😟🙁😮😯😲😳🥺😦😧😨😰"
                "😥😢😭😱😖😣😞😓😩😫🥱😤😡😠🤬😈👿💀💩🤡👻👽🤖"),
    ("People", "👋🤚🖐✋🖖👌🤌🤏✌🤞🤟🤘🤙👈👉👆👇☝👍👎✊👊🤛🤜👏🙌👐🤲🤝🙏✍💪🦾🧠👀👁"
               "👅👄👶🧒👦👧🧑👱👨🧔👩🧓👴👵🙍🙎🙅🙆💁🙋🧏🙇🤦🤷👮🕵💂🥷👷🤴👸👳🧕🤵👰"
               "🤰🤱👼🎅🤶🦸🦹🧙🧚🧛🧜🧝🧞🧟💃🕺👯🧖🧗🏃🚶"),
    ("Hearts", "❤🧡💛💚💙💜🖤🤍🤎💔❣💕💞💓💗💖💘💝💟💋💯💢💥💫💦💨🕳💬💭💤✨⭐🌟🔥🎉🎊"),
    ("Nature", "🐶🐱🐭🐹🐰🦊🐻🐼🐨🐯🦁🐮🐷🐸🐵🙈🙉🙊🐔🐧🐦🐤🦆🦅🦉🦇🐺🐗🐴🦄🐝🐛🦋🐌🐞🐜🐢🐍🦎🐙"
               "🦑🦀🐡🐠🐟🐬🐳🐋🦈🐊🐅🐆🦓🦍🐘🦒🐪🐄🐎🐖🐑🐐🦌🐕🐈🐓🦃🕊🐇🐁🌵🎄🌲🌳🌴🌱🌿☘🍀🍁"
               "🍂🍃🌷🌹🥀🌺🌸🌼🌻🌞🌝🌛🌚🌍🌙🌈☀⛅☁🌧⛈🌩❄☃⛄🌊"),
    ("Food", "🍏🍎🍐🍊🍋🍌🍉🍇🍓🫐🍈🍒🍑🥭🍍🥥🥝🍅🍆🥑🥦🥬🥒🌶🌽🥕🧄🧅🥔🍠🥐🥯🍞🥖🧀🥚🍳🧈🥞🧇"
             "🥓🥩🍗🍖🌭🍔🍟🍕🥪🌮🌯🥗🍝🍜🍲🍛🍣🍱🥟🍤🍙🍚🍘🍥🍢🍡🍧🍨🍦🥧🧁🍰🎂🍮🍭🍬🍫🍿🍩🍪"
             "🥛☕🍵🧃🥤🍶🍺🍻🥂🍷🥃🍸🍹🍾"),
    ("Activity", "⚽🏀🏈⚾🥎🎾🏐🏉🥏🎱🏓🏸🏒🏑🥍🏏⛳🏹🎣🥊🥋🎽🛹⛸🎿⛷🏂🏋🤼🤸🤺🤾🏌🏇🧘🏄🏊🚴"
                 "🏆🥇🥈🥉🏅🎖🎗🎫🎟🎪🎭🎨🎬🎤🎧🎼🎹🥁🎷🎺🎸🎻🎲♟🎯🎳🎮🕹🧩"),
    ("Travel", "🚗🚕🚙🚌🚎🏎🚓🚑🚒🚐🚚🚛🚜🛴🚲🛵🏍🚨🚔🚍🚘🚖🚡🚠🚟🚃🚋🚞🚝🚄🚅🚈🚂🚆🚇🚊🚉✈🛫"
               "🛬💺🚀🛸🚁🛶⛵🚤🛥🛳⛴🚢⚓⛽🚧🚦🚥🗺🗿🗽🗼🏰🏯🏟🎡🎢🎠⛲⛱🏖🏝🏜🌋⛰🏔🗻🏕⛺🏠🏡🏘"
               "🏢🏬🏣🏤🏥🏦🏨🏪🏫🏩💒🏛⛪🕌🕍🕋⛩🌅🌄🌠🎇🎆🌇🌆🏙🌃🌌🌉🌁"),
    ("Objects", "⌚📱💻⌨🖥🖨🖱💽💾💿📀📷📸📹🎥📞☎📺📻🎙⏱⏰🕰⌛⏳📡🔋🔌💡🔦🕯💸💵💶💷💰💳💎"
                "⚖🔧🔨⚒🛠⛏🔩⚙🔫💣🔪🗡⚔🛡🔮💊💉🧬🔬🔭🧹🧺🧻🚽🚿🛁🔑🗝🚪🛋🛏🧸🖼🛍🛒🎁🎈🎏🎀"
                "✉📩📨📧💌📦🏷📪📫📬📭📮📜📃📄📑📊📈📉📆📅🗑📇🗃🗳🗄📋📁📂🗂🗞📰📓📔📒📕📗📘📙📚📖"
                "🔖🔗📎🖇📐📏📌📍✂🖊🖋✒🖌🖍📝✏🔍🔎🔏🔐🔒🔓"),
    ("Symbols", "✅☑✔❌❎➕➖➗✖♾‼⁉❓❔❕❗〰💱💲⚕♻⚜🔱📛🔰⭕🚫💯🔞📵🚭❇✳❎🌐💠Ⓜ🌀💤🏧🚾♿🅿"
                "🈳🈂🛂🛃🛄🛅🚹🚺🚼🚻🚮🎦📶🈁🔣ℹ🔤🔡🔠🆖🆗🆙🆒🆕🆓0️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣8️⃣9️⃣🔟🔢#️⃣*️⃣▶"
                "⏸⏯⏹⏺⏭⏮⏩⏪⏫⏬◀🔼🔽➡⬅⬆⬇↗↘↙↖↕↔↪↩⤴⤵🔀🔁🔂🔄🔃🎵🎶〽⚠🚸⛔☢☣"),
    ("Flags", "🏁🚩🎌🏴🏳🏳️‍🌈🇺🇳🇪🇺🇩🇪🇫🇷🇬🇧🇮🇹🇪🇸🇵🇹🇳🇱🇧🇪🇨🇭🇦🇹🇵🇱🇨🇿🇸🇪🇳🇴🇩🇰🇫🇮🇮🇪🇬🇷🇹🇷🇺🇦"
              "🇷🇺🇺🇸🇨🇦🇲🇽🇧🇷🇦🇷🇨🇱🇯🇵🇨🇳🇰🇷🇮🇳🇦🇺🇳🇿🇿🇦🇪🇬🇳🇬🇰🇪🇮🇱🇸🇦🇮🇷"),
)


def emoji_of(category: str) -> list[str]:
    """The emoji of one category, each sequence whole (flags, keycaps, ZWJ sequences)."""
    from client.gui.emoji_art import split_emoji
    chars = dict(CATEGORIES)[category]
    return [piece for piece, is_emoji in split_emoji(chars) if is_emoji]


def name_of(sequence: str) -> str:
    """``"👍"`` -> ``thumbs up`` (from the ``emoji`` package when installed, else "")."""
    try:
        import emoji
    except ImportError:
        return ""
    data = emoji.EMOJI_DATA.get(sequence) or emoji.EMOJI_DATA.get(sequence + "\ufe0f") \
        or emoji.EMOJI_DATA.get(sequence.replace("\ufe0f", ""))
    if not data:
        return ""
    names = [data["en"], *data.get("alias", [])]
    return " ".join(n.strip(":").replace("_", " ") for n in names)


def search(words: str, limit: int = 90) -> list[str]:
    """Emoji from every category whose name has every word typed (``"thumb up"`` -> 👍)."""
    wanted = words.casefold().split()
    if not wanted:
        return []
    found: list[str] = []
    for category, _chars in CATEGORIES:
        for sequence in emoji_of(category):
            name = name_of(sequence).casefold()
            if all(w in name for w in wanted) and sequence not in found:
                found.append(sequence)
                if len(found) >= limit:
                    return found
    return found


class EmojiPicker:
    """A small window of emoji below ``anchor``; ``on_pick(emoji)`` inserts one."""

    def __init__(self, anchor: tk.Misc, art: EmojiArt | None, colours: Colours,
                 on_pick: Callable[[str], None], *, size: int = 11) -> None:
        self.art, self.colours, self._on_pick = art, colours, on_pick
        self.pixels = pixel_size(anchor, size + 5)
        self.font_size = size + 5
        top = self.top = tk.Toplevel(anchor)
        top.title("Emoji")
        top.transient(anchor.winfo_toplevel())
        top.resizable(False, False)
        border = tk.Frame(top, highlightthickness=1, highlightbackground=colours.muted,
                          highlightcolor=colours.muted, background=colours.background)
        border.pack(fill="both", expand=True)
        outer = ttk.Frame(border, padding=8)
        outer.pack(fill="both", expand=True)
        search = ttk.Frame(outer)
        search.grid(row=0, column=0, sticky="ew")
        search.columnconfigure(1, weight=1)
        ttk.Label(search, text="Search").grid(row=0, column=0, padx=(0, 6))
        self.search_var = tk.StringVar(top)
        self.search_entry = ttk.Entry(search, textvariable=self.search_var, width=24)
        self.search_entry.grid(row=0, column=1, sticky="ew")
        self.search_var.trace_add("write", lambda *_a: self._searched())
        tabs = ttk.Frame(outer)
        tabs.grid(row=1, column=0, sticky="ew", pady=(6, 4))
        self.category_buttons: dict[str, tk.Label] = {}
        for i, (category, _chars) in enumerate(CATEGORIES):
            first = emoji_of(category)[0]
            button = self._cell(tabs, first, lambda c=category: self.show(c), category)
            button.grid(row=0, column=i, padx=1)
            self.category_buttons[category] = button
        self.grid = tk.Frame(outer, background=colours.background)
        self.grid.grid(row=2, column=0, sticky="nsew")
        self.cells: dict[str, tk.Label] = {}
        self.name_var = tk.StringVar(top, value="Click an emoji to add it; Escape closes.")
        ttk.Label(outer, textvariable=self.name_var, foreground=colours.muted).grid(
            row=3, column=0, sticky="w", pady=(4, 0))
        top.bind("<Escape>", lambda _e: self.close())
        self.search_entry.bind("<Return>", lambda _e: self._pick_first())
        self.show(CATEGORIES[0][0])
        top.update_idletasks()
        x = anchor.winfo_rootx() + anchor.winfo_width() - top.winfo_reqwidth()
        y = anchor.winfo_rooty() - top.winfo_reqheight() - 8
        top.geometry(f"+{max(0, x)}+{max(0, y)}")
        self.search_entry.focus_set()
        self._pending: str | None = None
        top.bind("<FocusOut>", self._focus_out, add="+")

    def _cell(self, master: tk.Misc, sequence: str, action: Callable[[], None],
              tip: str = "") -> tk.Label:
        image = self.art.image(sequence, self.pixels) if self.art and self.art.pictures else None
        family = self.art.font_family if self.art else None
        cell = tk.Label(master, background=self.colours.background, borderwidth=0, padx=3,
                        pady=3, cursor="hand2")
        if image is not None:
            cell.configure(image=image)
        else:
            cell.configure(text=sequence, foreground=self.colours.foreground,
                           font=(family, self.font_size) if family else None)
        cell.bind("<Button-1>", lambda _e: action())
        cell.bind("<Enter>", lambda _e: (cell.configure(background=self.colours.select),
                                         self.name_var.set(tip or name_of(sequence))))
        cell.bind("<Leave>", lambda _e: cell.configure(background=self.colours.background))
        return cell

    def show(self, category: str) -> None:
        self._fill(emoji_of(category))

    def _fill(self, sequences: list[str]) -> None:
        for child in self.grid.winfo_children():
            child.destroy()
        self.cells = {}
        for i, sequence in enumerate(sequences[:COLUMNS * 12]):
            cell = self._cell(self.grid, sequence, lambda s=sequence: self.pick(s))
            cell.grid(row=i // COLUMNS, column=i % COLUMNS)
            self.cells[sequence] = cell

    def _searched(self) -> None:
        words = self.search_var.get()
        if words.strip():
            self._fill(search(words))
        else:
            self.show(CATEGORIES[0][0])

    def _pick_first(self) -> str:
        if self.cells:
            self.pick(next(iter(self.cells)))
        return "break"

    def pick(self, sequence: str) -> None:
        self._on_pick(sequence)
        self.close()

    def _focus_out(self, _event: object) -> None:
        # a click in another window closes the picker, like a menu (every child of the
        # window reports FocusOut: look once)
        if self._pending is None:
            self._pending = self.top.after(150, self._close_if_unfocused)

    def _close_if_unfocused(self) -> None:
        self._pending = None
        with contextlib.suppress(tk.TclError, KeyError):
            focus = self.top.focus_get()
            if focus is None or focus.winfo_toplevel() is not self.top:
                self.close()

    def close(self) -> None:
        with contextlib.suppress(tk.TclError):
            if self._pending is not None:
                self.top.after_cancel(self._pending)
                self._pending = None
            self.top.destroy()
