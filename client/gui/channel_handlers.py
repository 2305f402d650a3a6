"""Channels, history and message states in the window (issue 11): the chat events shown.

With an engine that has a chat part (``engine.chat``, a ``client.chat.api.ChatApi``), the window
gains a list of conversations on the left (client/gui/channels.py), a topic bar above the
messages (topic.py) and the members of the current channel in the roster (members.py); the tabs
and what surrounds them are conversations.py, every line typed goes through THE command table
(command_line.py). History is loaded when a conversation opens, above a "new messages" marker
(lines.py), and each private line we send shows waiting / delivered / not delivered. Without a
chat part (older stand-ins in tests) the window stays as it was: tabs, room, private messages.
"""

from __future__ import annotations

import logging

from client import events as ev
from client.chat import events as cev
from client.chat import names
from client.gui.base import EventHandlers, quietly
from client.gui.channel_state import ChannelState, is_room, mentions
from client.gui.channels import ChannelList
from client.gui.chat import ChatTab
from client.gui.conversations import Conversations
from client.gui.lines import DELIVERED, FAILED, WAITING
from client.gui.topic import TopicBar
from client.peer.trust import WARNING_KEY_CHANGED

log = logging.getLogger(__name__)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "…"


class ChannelHandlers(Conversations):
    """The chat events shown (``App`` derives from it through ``command_line.CommandLine``)."""

    def _channel_events(self) -> EventHandlers:
        return {cev.ChannelJoined: self._on_channel_joined,
                cev.ChannelParted: self._on_channel_parted,
                cev.TopicChanged: self._on_topic, cev.AwayChanged: self._on_away,
                cev.Renamed: self._on_renamed, cev.ChannelMessage: self._on_channel_message,
                cev.PrivateLine: self._on_private_line, cev.Action: self._on_action,
                cev.AwayReply: self._on_away_reply, cev.Waiting: self._on_waiting,
                cev.DeliveredLater: self._on_delivered_later, cev.Failed: self._on_failed}

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
        # the next or previous conversation in the list's order (the tabs are hidden)
        self.root.bind("<Alt-Down>", lambda _e: self.step_conversation(1))
        self.root.bind("<Alt-Up>", lambda _e: self.step_conversation(-1))
        self._sync()
        self.root.update_idletasks()   # the topic bar took some height: show the newest lines
        for tab in self.tabs.values():
            tab.view.text.see("end")

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
        warning = e.warning or (WARNING_KEY_CHANGED if changed else None)
        ours = names.peer_key(e.sender) == names.peer_key(self._me())
        named = not ours and mentions(e.text, self.nickname)
        if not self.lines_of(tab).add_line(e.line, self._me(), history=e.history,
                                           warning=warning,
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

