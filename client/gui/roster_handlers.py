"""The list of people: who joins and leaves, and the ✔ / ⚠ / ✗ marks beside their names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from client import events as ev
from client.gui.base import EventHandlers, Window, quietly


class RosterHandlers(Window):
    """The roster (a mixin of ``App``)."""

    def _roster_events(self) -> EventHandlers:
        return {ev.Registered: self._on_registered, ev.Joined: self._on_joined,
                ev.Left: self._on_left, ev.PeerUnreachable: self._on_peer_unreachable}

    def _on_registered(self, e: ev.Registered) -> None:
        self.nickname = e.nickname
        self.roster.set_all(e.nickname, e.roster)
        self._show_verified(e.roster)
        self._update_status()
        self._update_title()

    def _on_joined(self, e: ev.Joined) -> None:
        self.roster.add(e.nickname)
        self._show_verified([e.nickname])
        if not e.rename:   # half of a rename: "bob is now known as robert" says it
            self._tell_both(e.nickname, f"{e.nickname} joined")
        else:
            self._update_status()

    def _on_left(self, e: ev.Left) -> None:
        self.roster.remove(e.nickname)
        if not e.rename:
            self._tell_both(e.nickname, f"{e.nickname} left")
        else:
            self._update_status()

    def _tell_both(self, nick: str, text: str) -> None:
        """A line in the room and in the private tab with ``nick`` (if open)."""
        self.room.view.add_system(text)
        if nick in self.tabs:
            self.tabs[nick].view.add_system(text)
        self._update_status()

    def _on_peer_unreachable(self, e: ev.PeerUnreachable) -> None:
        if not self.roster.markers.get(e.nickname, "").startswith("⚠"):
            self.roster.set_marker(e.nickname, "✗")
        self._peer_view(e.nickname).view.add_system(
            f"{e.nickname} cannot be reached: {e.reason}", error=True)

    def _show_verified(self, nicks: Iterable[str]) -> None:
        """✔ for people whose key was verified, in this run or an earlier one (the pins file):
        the engine keeps that answer ready, so asking does not wait on the engine thread."""
        engine = self.engine
        if engine is None:
            return
        changes: dict[str, str | None] = {}
        for nick in nicks:
            current = self.roster.markers.get(nick)
            if current is not None and current != "✔":
                continue  # ⚠ (key changed) and ✗ (unreachable) say more
            want = "✔" if quietly(lambda n=nick: engine.is_verified(n)) else None
            if want != current:
                changes[nick] = want
        self.roster.set_markers(changes)

    def _with_selected(self, action: Callable[[str], Any]) -> None:
        nick = self.roster.selected()
        if nick is not None:
            action(nick)
