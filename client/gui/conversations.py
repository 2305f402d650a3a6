"""The conversations of the window when the engine has a chat part (a mixin of ``App``).

Which tab shows which conversation (``#room`` is the tab keyed None, other channels by name,
private conversations by nickname), history loaded when a tab opens, and what is shown around
the messages: the list of conversations with unread counts and mentions, the topic bar, the
members in the roster. ``channel_handlers.ChannelHandlers`` (the chat events) builds on it.
"""

from __future__ import annotations

import logging
from tkinter import ttk
from typing import Any

from client.chat import names
from client.chat.api import ChatApi
from client.gui.base import Window, quietly
from client.gui.channel_state import ROOM, ChannelState, is_room
from client.gui.channels import ChannelList, Row
from client.gui.chat import ChatTab
from client.gui.lines import Lines, style
from client.gui.members import MemberRoster
from client.gui.topic import TopicBar

log = logging.getLogger(__name__)

HISTORY_ON_OPEN = 100   # lines of history shown when a conversation opens
_NO_TABS = "Conversations.TNotebook"


class Conversations(Window):
    """Tabs, history, the list, topic bar and members (before ``ChatHandlers`` in ``App``)."""

    roster: MemberRoster
    sidebar: ChannelList | None
    topic_bar: TopicBar | None
    chat_state: ChannelState | None
    _lines: dict[str, Lines]          # a tab's widget path -> its extra lines
    _mentioned: set[str]              # widget paths of tabs whose unread lines name us
    _history_before: int | None       # opening a tab for a new line: history older than it

    def _init_channels(self) -> None:
        self.sidebar = None
        self.topic_bar = None
        self.chat_state = None
        self._lines = {}
        self._mentioned = set()
        self._history_before = None

    def _chat(self) -> ChatApi | None:
        engine = self.engine
        chat = None if engine is None else engine.chat
        return chat if chat is not None and chat.available else None

    def _live(self) -> bool:
        # after a disconnect the old sidebar is gone until _build_channels makes a new one
        return self.sidebar is not None and self.main_frame is not None \
            and self.chat_state is not None and bool(self.sidebar.winfo_exists())

    # --- conversations -------------------------------------------------------------------------
    def _key_of(self, target: str) -> str | None:
        """The ``tabs`` key of a conversation: None for ``#room``, else as first opened."""
        if names.is_channel(target):
            if is_room(target):
                return None
            same = [k for k in self.tabs if k is not None and names.same_channel(k, target)]
        else:
            want = names.peer_key(target)
            same = [k for k in self.tabs if k is not None and not k.startswith(names.PREFIX)
                    and names.peer_key(k) == want]
        return same[0] if same else target

    @staticmethod
    def _target_of(tab: ChatTab) -> str:
        return ROOM if tab.peer is None else tab.peer

    @staticmethod
    def _is_channel_tab(tab: ChatTab) -> bool:
        return tab.peer is None or tab.peer.startswith(names.PREFIX)

    def lines_of(self, tab: ChatTab) -> Lines:
        found = self._lines.get(str(tab))
        if found is None:
            found = self._lines[str(tab)] = Lines(tab.view)
            style(tab.view, self.colours)
        return found

    def _new_tab(self, peer: str | None) -> ChatTab:
        tab = super()._new_tab(peer)  # type: ignore[misc]
        self.lines_of(tab)
        if self._live():
            self._load_history(tab)
            self._sync()
        return tab

    def _load_history(self, tab: ChatTab) -> None:
        chat = self._chat()
        if chat is None:
            return
        target = self._target_of(tab)
        found = quietly(lambda: chat.history(target, HISTORY_ON_OPEN)) or []
        before = self._history_before
        if before is not None:   # the line that opened the tab (and later ones) come as new
            found = [line for line in found if line.ts_ms < before]
        lines = self.lines_of(tab)
        shown = [line for line in found if lines.add_line(line, self._me(), history=True)]
        if shown:
            lines.add_marker()

    def open_channel(self, channel: str, select: bool = True) -> ChatTab:
        key = self._key_of(channel)
        tab = self.tabs.get(key)
        if tab is None:
            tab = self._new_tab(key)
        if select:
            self.notebook.select(tab)
            tab.input.text.focus_set()
        return tab

    def open_conversation(self, target: str) -> None:
        """The sidebar's choice: a channel or a private conversation."""
        current = self.current_tab()
        if current is not None and self._key_of(target) == current.peer:
            return
        if names.is_channel(target):
            self.open_channel(target)
        else:
            self.open_private(target)

    def step_conversation(self, step: int) -> str:
        """Alt+Down / Alt+Up: the next or previous conversation in the list."""
        if self._live():
            assert self.sidebar is not None
            order = self.sidebar.targets()
            current = self.current_tab()
            here = self._target_of(current) if current is not None else None
            if order:
                i = order.index(here) if here in order else -step
                self.open_conversation(order[(i + step) % len(order)])
        return "break"

    def close_tab(self, *args: Any, **kwargs: Any) -> None:
        super().close_tab(*args, **kwargs)  # type: ignore[misc]
        alive = {str(t) for t in self.tabs.values()}
        self._lines = {k: v for k, v in self._lines.items() if k in alive}
        self._sync()

    def _drop_tab(self, tab: ChatTab) -> None:
        self.notebook.forget(tab)
        del self.tabs[tab.peer]
        self._lines.pop(str(tab), None)
        tab.destroy()
        self._sync()

    # --- unread, mentions, what is shown around the messages ------------------------------------
    def _bump_unread(self, tab: ChatTab, mention: bool = False) -> None:
        super()._bump_unread(tab)  # type: ignore[misc]
        if self.current_tab() is not tab:
            if mention:
                self._mentioned.add(str(tab))
            self._sync_list()

    def _tab_changed(self, event: object) -> None:
        super()._tab_changed(event)  # type: ignore[misc]
        tab = self.current_tab()
        if tab is not None:
            self._mentioned.discard(str(tab))
        self._sync()

    def _sync(self) -> None:
        """The sidebar, topic bar and member list for what is shown now."""
        if self._live():
            self._sync_list()
            self._show_around(self.current_tab())

    def _sync_list(self) -> None:
        """The sidebar: our channels and open conversations, their unread counts."""
        if not self._live():
            return
        state = self.chat_state
        assert state is not None and self.sidebar is not None and self.topic_bar is not None
        current = self.current_tab()
        channels: dict[str, Row] = {}
        for channel in state.joined():
            channels[names.channel_key(channel)] = self._row(channel, True)
        people = []
        for tab in self.tabs.values():
            target = self._target_of(tab)
            if self._is_channel_tab(tab):
                key = names.channel_key(target)
                channels.setdefault(key, self._row(state.display(target), False))
            else:
                people.append(self._row(target, True))
        order = sorted(channels.values(), key=lambda r: (not is_room(r.target),
                                                         r.target.casefold()))
        people.sort(key=lambda r: r.target.casefold())
        shown = self._target_of(current) if current is not None else None
        self.sidebar.set_rows(order, people, shown)

    def _row(self, target: str, joined: bool) -> Row:
        tab = self.tabs.get(self._key_of(target))
        unread = tab.unread if tab is not None else 0
        mention = tab is not None and str(tab) in self._mentioned
        away = self.chat_state is not None and not names.is_channel(target) \
            and self.chat_state.away_of(target) is not None
        return Row(target, unread, mention, joined, away)

    def _show_around(self, tab: ChatTab | None) -> None:
        state, bar = self.chat_state, self.topic_bar
        if tab is None or state is None or bar is None:
            return
        target = self._target_of(tab)
        away = state.away_map()
        if self._is_channel_tab(tab):
            text, setter = state.topic(target)
            name = state.display(target)
            bar.show(name, text, setter, channel=name if state.is_joined(target) else None)
            self.roster.show_members(name, state.members(target), away)
        else:
            gone = state.away_of(target)
            bar.show(target, f"away: {gone}" if gone is not None else
                     "Private conversation: only the two of you see these messages.",
                     channel=None)
            self.roster.show_members(None, None, away)

    def _hide_tab_strip(self) -> None:
        """The list on the left names every conversation: the notebook's own tabs would say it
        twice (and crowd out the names). Each theme has its own layouts: set again on change."""
        ttk.Style(self.root).layout(_NO_TABS + ".Tab", [])
        self.notebook.configure(style=_NO_TABS)

    def _recolour_channels(self) -> None:
        if self.main_frame is None:
            return
        if self._live():
            self._hide_tab_strip()
        self.roster.recolour(self.colours)
        for tab in self.tabs.values():
            style(tab.view, self.colours)
        if self._live():
            assert self.sidebar is not None and self.topic_bar is not None
            self.sidebar.recolour(self.colours)
            self.topic_bar.recolour(self.colours)

    def _me(self) -> str:
        return self.nickname or ""
