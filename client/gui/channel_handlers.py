"""Channels, history and message states (issue 11), a mixin of ``App``.

With an engine that has a chat part (``engine.chat``, a ``client.chat.api.ChatApi``), the window
gains a list of conversations on the left (client/gui/channels.py), a topic bar above the
messages (topic.py) and the members of the current channel in the roster (members.py); every
line typed goes through THE command table (command_line.py). History is loaded when a
conversation opens, above a "new messages" marker (lines.py), and each private line we send
shows waiting / delivered / not delivered. Without a chat part (older
stand-ins in tests) the window stays as it was: tabs, room and private messages.
"""

from __future__ import annotations

import logging
from tkinter import ttk
from typing import Any

from client import events as ev
from client.chat import events as cev
from client.chat import names
from client.chat.api import ChatApi
from client.gui.base import EventHandlers, Window, quietly
from client.gui.channel_state import ROOM, ChannelState, is_room, mentions
from client.gui.channels import ChannelList, Row
from client.gui.chat import ChatTab
from client.gui.lines import DELIVERED, FAILED, WAITING, Lines, style
from client.gui.members import MemberRoster
from client.gui.topic import TopicBar
from client.peer.secure import WARNING_KEY_CHANGED

log = logging.getLogger(__name__)

HISTORY_ON_OPEN = 100   # lines of history shown when a conversation opens
_NO_TABS = "Conversations.TNotebook"


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "…"


class ChannelHandlers(Window):
    """The chat part of the window (a mixin of ``App``, before ``ChatHandlers``); what the user
    types and picks is its subclass ``command_line.CommandLine``."""

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

    def _channel_events(self) -> EventHandlers:
        return {cev.ChannelJoined: self._on_channel_joined,
                cev.ChannelParted: self._on_channel_parted,
                cev.TopicChanged: self._on_topic, cev.AwayChanged: self._on_away,
                cev.Renamed: self._on_renamed, cev.ChannelMessage: self._on_channel_message,
                cev.PrivateLine: self._on_private_line, cev.Action: self._on_action,
                cev.AwayReply: self._on_away_reply, cev.Waiting: self._on_waiting,
                cev.DeliveredLater: self._on_delivered_later, cev.Failed: self._on_failed}

    def _chat(self) -> ChatApi | None:
        engine = self.engine
        return None if engine is None else engine.chat

    # --- building ------------------------------------------------------------------------------
    def _build_channels(self) -> None:
        """After ``_build_main``: the sidebar and topic bar, our channels and their history."""
        self._lines = {k: v for k, v in self._lines.items()
                       if any(str(t) == k for t in self.tabs.values())}
        self._mentioned = set()
        self.roster.recolour(self.colours)
        chat = self._chat()
        if chat is None or self.main_frame is None:
            self.sidebar = self.topic_bar = self.chat_state = None
            return
        self.sidebar = ChannelList(self.panes, self.colours, on_open=self.open_conversation,
                                   on_join=self.open_join_dialog, on_leave=self.leave_channel,
                                   on_close=self.close_conversation)
        self.panes.insert(0, self.sidebar, weight=1)
        self._hide_tab_strip()
        self.topic_bar = TopicBar(self.main_frame, self.colours, on_set=self.set_topic)
        self.topic_bar.pack(side="top", fill="x", before=self.panes)
        state = self.chat_state = ChannelState(self.nickname or "")
        known = quietly(chat.list_channels) or []
        members: dict[str, list[str]] = {}
        for info in known:
            if info.joined:
                found = quietly(lambda c=info.name: chat.names(c))
                if found:
                    members[found[0]] = found[1]
        state.seed(known, members)
        self._load_history(self.room)
        for channel in state.joined():
            if not is_room(channel):
                self.open_channel(channel, select=False)
        for bind in ("<Control-j>", "<Control-J>"):
            self.root.bind(bind, lambda _e: self._key_join())
        self._sync()
        self.root.update_idletasks()   # the topic bar took some height: show the newest lines
        for tab in self.tabs.values():
            tab.view.text.see("end")

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

    # --- chat events ---------------------------------------------------------------------------
    def _apply(self, event: cev.ChatEvent) -> None:
        if self.chat_state is not None:
            self.chat_state.apply(event)

    def _on_channel_joined(self, e: cev.ChannelJoined) -> None:
        self._apply(e)
        if names.peer_key(e.nick) == names.peer_key(self._me()):
            tab = self.open_channel(e.channel, select=e.fresh)
            if e.fresh:
                tab.view.add_system(f"You joined {e.channel}.")
        elif e.mine and e.fresh:
            tab = self.tabs.get(self._key_of(e.channel))
            if tab is not None:
                tab.view.add_system(f"{e.nick} joined {e.channel}")
        self._sync()

    def _on_channel_parted(self, e: cev.ChannelParted) -> None:
        self._apply(e)
        why = f" ({e.reason})" if e.reason else ""
        tab = self.tabs.get(self._key_of(e.channel))
        if names.peer_key(e.nick) == names.peer_key(self._me()):
            if tab is not None and tab.peer is not None:
                self._drop_tab(tab)
            (self.current_tab() or self.room).view.add_system(f"You left {e.channel}{why}.")
        elif e.mine and not e.quit and tab is not None:
            tab.view.add_system(f"{e.nick} left {e.channel}{why}")
        self._sync()

    def _on_topic(self, e: cev.TopicChanged) -> None:
        self._apply(e)
        tab = self.tabs.get(self._key_of(e.channel))
        if e.mine and tab is not None and e.text and not e.history:
            tab.view.add_system(f"{e.setter} set the topic: {e.text}")
        self._sync()

    def _on_away(self, e: cev.AwayChanged) -> None:
        self._apply(e)
        if names.peer_key(e.nick) == names.peer_key(self._me()):
            (self.current_tab() or self.room).view.add_system(
                "You are back." if e.text is None else f"You are away: {e.text}")
        elif e.fresh:
            tab = self.tabs.get(self._key_of(e.nick))
            if tab is not None:
                tab.view.add_system(f"{e.nick} is back" if e.text is None
                                    else f"{e.nick} is away: {e.text}")
        self._sync()

    def _on_renamed(self, e: cev.Renamed) -> None:
        self._apply(e)
        text = f"{e.old} is now known as {e.new}"
        if names.peer_key(e.old) == names.peer_key(self._me()):
            self.nickname = e.new
            self.roster.set_all(e.new, self.roster.nicks)
            self._update_title()
            self._update_status()
        elif e.old in self.roster.nicks:
            self.roster.nicks.discard(e.old)
            self.roster.add(e.new)
        old_key = self._key_of(e.old)
        tab = self.tabs.pop(old_key) if old_key in self.tabs else None
        if tab is not None:
            tab.peer = e.new
            self.tabs[e.new] = tab
            self.notebook.tab(tab, text=tab.title)
            tab.view.add_system(text)
        for channel_tab in self.tabs.values():
            if self._is_channel_tab(channel_tab) and self.chat_state is not None and any(
                    names.peer_key(m) == names.peer_key(e.new)
                    for m in self.chat_state.members(self._target_of(channel_tab))):
                channel_tab.view.add_system(text)
        self._sync()

    def _show(self, tab: ChatTab, e: cev.ChannelMessage | cev.PrivateLine | cev.Action,
              where: str) -> None:
        # a peer whose key changed (the roster's ⚠) is flagged on each line, as today
        changed = self.roster.markers.get(e.sender, "").startswith("⚠")
        ours = names.peer_key(e.sender) == names.peer_key(self._me())
        named = not ours and mentions(e.text, self.nickname)
        if not self.lines_of(tab).add_line(e.line, self._me(), history=e.history,
                                           warning=WARNING_KEY_CHANGED if changed else None,
                                           mention=named and not self._is_private(e)):
            return
        if e.history or ours:
            return
        self._clear_unreachable(e.sender)
        mention = self._is_private(e) or named
        self._bump_unread(tab, mention)
        self._ask_attention(f"{e.sender} {where}", e.text, urgent=mention)

    @staticmethod
    def _is_private(e: cev.ChannelMessage | cev.PrivateLine | cev.Action) -> bool:
        return isinstance(e, cev.PrivateLine) or (isinstance(e, cev.Action)
                                                  and e.channel is None)

    def _tab_for(self, e: cev.ChannelMessage | cev.PrivateLine | cev.Action) -> ChatTab:
        """The tab of a line's conversation, opened in the background if need be."""
        self._history_before = None if e.history else e.line.ts_ms
        try:
            channel = None if isinstance(e, cev.PrivateLine) else e.channel
            if channel is not None:
                return self.open_channel(channel, select=False)
            mine = names.peer_key(e.line.author) == names.peer_key(self._me())
            return self.open_private(e.line.target if mine else e.line.author, select=False)
        finally:
            self._history_before = None

    def _on_channel_message(self, e: cev.ChannelMessage) -> None:
        self._show(self._tab_for(e), e, f"in {e.channel}")

    def _on_private_line(self, e: cev.PrivateLine) -> None:
        self._show(self._tab_for(e), e, "(private)")

    def _on_action(self, e: cev.Action) -> None:
        self._show(self._tab_for(e), e, f"in {e.channel}" if e.channel else "(private)")

    def _on_not_delivered(self, e: ev.NotDelivered) -> None:
        """A line we sent through the chat part has no engine id: found by its text."""
        tab = (self.tabs.get(self._key_of(e.nickname)) if e.private else self.room) or self.room
        number = self.lines_of(tab).own_number(e.text)
        if number is None or not tab.view.mark_undelivered(number, e.nickname):
            super()._on_not_delivered(e)  # type: ignore[misc]

    def _on_away_reply(self, e: cev.AwayReply) -> None:
        self.open_private(e.nick, select=False).view.add_system(f"{e.nick} is away: {e.text}")

    def _on_waiting(self, e: cev.Waiting) -> None:
        tab = self.open_private(e.nick, select=False)
        lines = self.lines_of(tab)
        if not lines.set_state(e.msg_id, e.text, WAITING):
            lines.add_own(e.text, self._me(), private=True)
            lines.set_state(e.msg_id, e.text, WAITING)

    def _on_delivered_later(self, e: cev.DeliveredLater) -> None:
        tab = self.open_private(e.nick, select=False)
        if not self.lines_of(tab).set_state(e.msg_id, e.text, DELIVERED):
            tab.view.add_system(f"delivered to {e.nick}: {_short(e.text)}")

    def _on_failed(self, e: cev.Failed) -> None:
        tab = self.open_private(e.nick, select=False)
        if not self.lines_of(tab).set_state(e.msg_id, e.text, FAILED):
            tab.view.add_system(f"not delivered to {e.nick}: {_short(e.text)}", error=True)

