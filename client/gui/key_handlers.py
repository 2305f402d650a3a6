"""Identity keys: a key that changed, "Who is this?", and marking a key as verified."""

from __future__ import annotations

import contextlib
import tkinter as tk

from client import events as ev
from client.gui.base import EventHandlers, Window
from client.gui.whois import WhoisDialog


class KeyHandlers(Window):
    """Identity keys (a mixin of ``App``)."""

    def _key_events(self) -> EventHandlers:
        return {ev.KeyChanged: self._on_key_changed}

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

    def show_whois(self, nick: str) -> None:
        WhoisDialog(self, nick)

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
