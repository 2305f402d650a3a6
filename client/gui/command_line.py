"""What the user types and picks, when the engine has a chat part (a mixin of ``App``).

Every typed line goes through THE command table (client/chat/commands.py): plain text to the
conversation shown, ``/join``, ``/topic``, ``/me``, ``/help``..., with the replies in the view.
Our own line is shown where it went (the engine does not echo it). The topic bar's edit, "Join
channel…" and the conversation list's menu run the same commands.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from client.chat import commands, names
from client.chat.lines import format_history
from client.gui.base import quietly
from client.gui.channel_handlers import ChannelHandlers
from client.gui.chat import ChatTab
from client.gui.join_dialog import JoinDialog

log = logging.getLogger(__name__)

_SENDS = frozenset({"say", "msg", "me"})


class CommandLine(ChannelHandlers):
    """The input line, the topic edit and the channel dialogs (``App`` derives from it)."""

    # --- what the user types -------------------------------------------------------------------
    def send(self, peer: str | None, text: str) -> bool:
        """Typed text: through the command table when the engine has a chat part."""
        if self._chat() is None:
            return bool(super().send(peer, text))  # type: ignore[misc]
        return self.run_input(self.tabs.get(peer, self.room), text)

    def run_input(self, tab: ChatTab, line: str) -> bool:
        """One typed line in ``tab``; False keeps it in the input (a mistake to correct)."""
        chat = self._chat()
        if chat is None:
            return False
        here = self._target_of(tab)
        parsed = commands.parse(line, here)
        if parsed is None:
            return True
        if isinstance(parsed, commands.UsageError):
            tab.view.add_system(parsed.text, error=True)
            return False
        parsed = _in_this_channel(parsed, here)
        sending = parsed.spec.name in _SENDS
        # the conversation written to is opened first, so its history comes before our line
        dest, opened = self._destination(tab, parsed) if sending else (tab, False)
        try:
            reply = commands.execute(parsed, chat)
        except Exception as exc:   # the engine failing must not take the window with it
            log.warning("%s failed: %r", parsed.spec.name, exc)
            reply = commands.Reply((f"{parsed.spec.name} failed: {exc}",))
        if reply.quit:   # after this key press is handled: the input still exists then
            self.root.after_idle(self.close)
            return True
        if sending and reply.notices and opened:
            self._drop_tab(dest)
        for notice in reply.notices:
            tab.view.add_system(notice, error=sending)
        me = self._me()
        for old in reply.history:
            shown = format_history(old, me)
            if shown is not None:
                tab.view.add_system(shown.removeprefix("-!- "))
        if sending and not reply.notices:
            self.lines_of(dest).add_own(parsed.args.text, me, action=parsed.spec.name == "me",
                                        private=not self._is_channel_tab(dest))
        return not (sending and reply.notices)

    def _destination(self, tab: ChatTab, command: commands.Command) -> tuple[ChatTab, bool]:
        """The tab a message goes to (``/msg`` elsewhere opens it) and whether it is new."""
        args = command.args
        target = args.target if command.spec.name == "msg" else args.here
        if target is None or target == self._target_of(tab):
            return tab, False
        opened = self._key_of(target) not in self.tabs
        dest = self.open_channel(target) if names.is_channel(target) \
            else self.open_private(target)
        return dest, opened

    def set_topic(self, channel: str, text: str) -> None:
        """The topic bar's edit: the same as typing ``/topic #channel text``."""
        self.run_input(self.current_tab() or self.room, f"/topic {channel} {text}")

    def _key_join(self) -> str:
        if self.sidebar is not None and self.main_frame is not None:
            self.open_join_dialog()
        return "break"

    def open_join_dialog(self) -> JoinDialog | None:
        chat = self._chat()
        if chat is None:
            return None
        known = quietly(chat.list_channels) or []
        return JoinDialog(self.root, self.colours, known, on_join=self.join_channel)

    def join_channel(self, name: str) -> None:
        self.run_input(self.current_tab() or self.room, f"/join {name}")

    def leave_channel(self, name: str) -> None:
        self.run_input(self.current_tab() or self.room, f"/part {name}")

    def close_conversation(self, nick: str) -> None:
        tab = self.tabs.get(self._key_of(nick))
        if tab is not None and tab.peer is not None:
            self._drop_tab(tab)


def _in_this_channel(command: commands.Command, here: str) -> commands.Command:
    """A command whose channel is optional acts on the channel shown (``/part``, ``/topic``,
    ``/names`` typed in #games mean #games), not on whichever channel the engine has current."""
    args = command.args
    if args.channel is not None or not names.is_channel(here) or not any(
            p.kind is commands.Kind.CHANNEL and p.optional for p in command.spec.params):
        return command
    return commands.Command(command.spec, replace(args, channel=here))
