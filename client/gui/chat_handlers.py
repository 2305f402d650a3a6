"""The conversations: tabs, sending, messages in, the server's state, asking for attention."""

from __future__ import annotations

import logging
import sys
import time
import tkinter as tk

from client import events as ev
from client.gui.attention import title_for
from client.gui.base import EventHandlers, Window
from client.gui.chat import ChatTab
from client.gui.theme import close_icon
from client.peer.messenger import MAX_MESSAGE
from client.wording import human_size

log = logging.getLogger(__name__)

CLOSE_HIT = 22   # pixels at a private tab's right end that close it (the "×" and its padding)


class ChatHandlers(Window):
    """Tabs and messages (a mixin of ``App``)."""

    def _chat_events(self) -> EventHandlers:
        return {ev.RoomMessage: self._on_room, ev.PrivateMessage: self._on_private,
                ev.NotDelivered: self._on_not_delivered, ev.ServerLost: self._on_server_lost,
                ev.ServerBack: self._on_server_back, ev.Reregistered: self._on_reregistered}

    # --- tabs ----------------------------------------------------------------------------------
    def _new_tab(self, peer: str | None) -> ChatTab:
        tab = ChatTab(self.notebook, self.colours, peer, on_send=self.send,
                      on_send_file=self.send_file if peer is not None
                      and not peer.startswith("#") else None,
                      art=self.art, size=self.text_size)
        self.tabs[peer] = tab
        if peer is None:
            self.notebook.add(tab, text=tab.title)
        else:   # a private tab has a close button: the "×" drawn right of its name
            self.notebook.add(tab, text=tab.title, image=self._tab_icon(), compound="right")
        for widget in (tab.view.text, tab.input.text):
            self._drop_target(widget)
        return tab

    # --- closable tabs -------------------------------------------------------------------------
    def _tab_icon(self) -> object:
        if self._close_icon is None:
            self._close_icon = close_icon(self.root, self.colours.muted)
        return self._close_icon

    def _recolour_tab_icons(self) -> None:
        if self._close_icon is None:
            return
        self._close_icon = close_icon(self.root, self.colours.muted)
        for tab in self.tabs.values():
            if tab.peer is not None:
                self.notebook.tab(tab, image=self._close_icon)

    def _bind_tab_closing(self) -> None:
        self.notebook.bind("<ButtonRelease-1>", self._tab_clicked, add="+")
        self.notebook.bind("<ButtonRelease-2>", self._tab_middle_clicked, add="+")

    def _tab_at(self, x: int, y: int) -> ChatTab | None:
        try:
            index = int(self.notebook.index(f"@{x},{y}"))
        except (tk.TclError, ValueError):
            return None
        name = self.notebook.tabs()[index]
        return next((t for t in self.tabs.values() if str(t) == name), None)

    def on_close_button(self, x: int, y: int) -> bool:
        """Whether (x, y) in the notebook is on a private tab's "×" (its right end)."""
        tab = self._tab_at(x, y)
        if tab is None or tab.peer is None or not self.notebook.identify(x, y):
            return False
        edge = x
        while edge < x + 40 and self._tab_at(edge + 1, y) is tab \
                and self.notebook.identify(edge + 1, y):
            edge += 1
        return edge - x < CLOSE_HIT

    def _tab_clicked(self, event: tk.Event) -> None:
        if self.on_close_button(event.x, event.y):
            self.close_tab(self._tab_at(event.x, event.y))

    def _tab_middle_clicked(self, event: tk.Event) -> None:
        tab = self._tab_at(event.x, event.y)
        if tab is not None and tab.peer is not None:
            self.close_tab(tab)

    @property
    def room(self) -> ChatTab:
        return self.tabs[None]

    def current_tab(self) -> ChatTab | None:
        try:
            name = self.notebook.select()
        except tk.TclError:
            return None
        return next((t for t in self.tabs.values() if str(t) == name), None)

    def open_private(self, nick: str, select: bool = True) -> ChatTab:
        tab = self.tabs.get(nick)
        if tab is None:
            tab = self._new_tab(nick)
            tab.view.add_system(f"Private conversation with {nick}. Only the two of you "
                                "see these messages.")
        if select:
            self.notebook.select(tab)
            tab.input.text.focus_set()
        return tab

    def close_tab(self, tab: ChatTab | None = None) -> None:
        """Close ``tab`` (default: the current one); the room stays."""
        tab = tab or self.current_tab()
        if tab is None or tab.peer is None:
            return
        if tab.picker is not None:
            tab.picker.close()
        self.notebook.forget(tab)
        del self.tabs[tab.peer]
        tab.destroy()
        self.room.input.text.focus_set()

    def cycle_tab(self, step: int) -> None:
        order = list(self.notebook.tabs())
        if not order:
            return
        current = self.notebook.select()
        i = order.index(current) if current in order else 0
        self.notebook.select(order[(i + step) % len(order)])

    def _tab_changed(self, _event: object) -> None:
        tab = self.current_tab()
        if tab is None:
            return
        if tab.unread:
            tab.unread = 0
            self.notebook.tab(tab, text=tab.title)
        tab.input.text.focus_set()

    def _peer_view(self, nick: str) -> ChatTab:
        return self.tabs.get(nick) or self.room

    # --- attention, title, status bar ----------------------------------------------------------
    def _bump_unread(self, tab: ChatTab) -> None:
        if self.current_tab() is not tab:
            tab.unread += 1
            self.notebook.tab(tab, text=tab.title)

    def _window_focused(self) -> bool:
        # "focus" is empty when another application has the keyboard focus
        return bool(str(self.root.tk.call("focus")))

    def _focus_in(self, _event: object) -> None:
        if self.title_unread:
            self.title_unread = 0
            self._update_title()

    def _ask_attention(self, title: str, body: str, urgent: bool) -> None:
        if self._window_focused():
            return
        self.title_unread += 1
        self._update_title()
        hwnd = None
        if sys.platform == "win32":
            try:
                hwnd = int(self.root.wm_frame(), 16)
            except (tk.TclError, ValueError):
                hwnd = None
        self.attention.flash(hwnd)
        if urgent:
            self.attention.notify(title, body, now=time.monotonic())

    def _update_title(self) -> None:
        self.root.title(title_for(self.nickname, self.title_unread, self.server_online))

    def _update_status(self) -> None:
        if self.main_frame is None:
            return
        online = len(self.roster.nicks) + 1
        if self.server_online:
            text = f"Connected to {self.server_label} as {self.nickname} · {online} online"
        else:
            text = f"Server unreachable (peers still reachable) · {online} online"
        self.status_var.set(text)
        self.status.configure(foreground="" if self.server_online else self.colours.error)

    def _server_state(self, online: bool, text: str) -> None:
        self.server_online = online
        self.room.view.add_system(text, error=not online)
        self._update_status()
        self._update_title()

    # --- what the user types -------------------------------------------------------------------
    def send(self, peer: str | None, text: str) -> bool:
        """Send what the user typed; False keeps the text in the input (e.g. too long)."""
        engine = self.engine
        if engine is None:
            return False
        tab = self.tabs.get(peer, self.room)
        if text.startswith("//"):
            text = text[1:]
        elif text.startswith("/"):
            return self._command(tab, text)
        return self._send_text(tab, peer, text)

    def _command(self, tab: ChatTab, line: str) -> bool:
        """``/msg``, ``/whois``, ``/help`` typed in the message line (Help lists them)."""
        command, _, rest = line.partition(" ")
        command = command.casefold()
        if command == "/msg":
            nick, _, text = rest.strip().partition(" ")
            if not nick or not text.strip():
                tab.view.add_system("Usage: /msg NICK text", error=True)
                return False
            known = {n.casefold(): n for n in self.roster.nicks}
            if nick.casefold() not in known:
                tab.view.add_system(f"No one called {nick} is online.", error=True)
                return False
            nick = known[nick.casefold()]
            return self._send_text(self.open_private(nick), nick, text)
        if command == "/whois" and rest.strip():
            self.show_whois(rest.strip())
            return True
        if command == "/help":
            self.show_help()
            return True
        tab.view.add_system(f"Unknown command {command}. Commands: /msg NICK text, /whois NICK, "
                            "/help; type //text to send text starting with /.", error=True)
        return False

    def _send_text(self, tab: ChatTab, peer: str | None, text: str) -> bool:
        engine = self.engine
        if engine is None:
            return False
        try:
            msg_id = engine.send_room(text) if peer is None else engine.send_private(peer, text)
        except ValueError as exc:   # MessageTooLarge and UnknownPeer are ValueErrors
            why = str(exc) or f"message too long (at most {human_size(MAX_MESSAGE)})"
            tab.view.add_system(f"Not sent: {why}", error=True)
            return False
        except Exception as exc:
            log.warning("sending failed: %r", exc)
            tab.view.add_system(f"Not sent: {exc}", error=True)
            return False
        tab.view.add_message(self.nickname or "me", text, own=True, msg_id=msg_id)
        return True

    # --- engine events -------------------------------------------------------------------------
    def _on_room(self, e: ev.RoomMessage) -> None:
        self.room.view.add_message(e.sender, e.text, warning=e.warning)
        self._clear_unreachable(e.sender)
        self._bump_unread(self.room)
        mention = bool(self.nickname) and self.nickname.casefold() in e.text.casefold()
        self._ask_attention(f"{e.sender} in the room", e.text, urgent=mention)

    def _on_private(self, e: ev.PrivateMessage) -> None:
        tab = self.open_private(e.sender, select=False)
        tab.view.add_message(e.sender, e.text, warning=e.warning)
        self._clear_unreachable(e.sender)
        self._bump_unread(tab)
        self._ask_attention(f"{e.sender} (private)", e.text, urgent=True)

    def _clear_unreachable(self, nick: str) -> None:
        if self.roster.markers.get(nick) == "✗":
            self.roster.set_marker(nick, None)

    def _on_not_delivered(self, e: ev.NotDelivered) -> None:
        tab = self.tabs.get(e.nickname) if e.private else self.room
        if tab is None:
            tab = self.room
        if not tab.view.mark_undelivered(e.msg_id, e.nickname):
            short = e.text if len(e.text) <= 80 else e.text[:80] + "…"
            tab.view.add_system(f"not delivered to {e.nickname}: {short}", error=True)

    def _on_server_lost(self, _e: ev.ServerLost) -> None:
        self._server_state(False, "The server is unreachable. People already in the list can "
                                  "still be reached; newcomers will not show up.")

    def _on_server_back(self, _e: ev.ServerBack) -> None:
        self._server_state(True, "The server is reachable again.")

    def _on_reregistered(self, _e: ev.Reregistered) -> None:
        self._server_state(True, f"The server had forgotten us; registered again as "
                                 f"{self.nickname}.")
