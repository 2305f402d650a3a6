"""Issue 11 in the window: channel list, unread counts and mentions, topic bar, members and
away, "Join channel…", the command table in the input line, history with its marker, and the
state of each private message — against ``tests.chat_fake.FakeChat`` (an in-memory ChatApi)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.chat import events as cev
from client.chat.commands import help_lines
from client.chat.wire import Kind
from client.gui import App
from client.gui.lines import MARKER
from client.gui.topic import NO_TOPIC
from tests.chat_fake import FakeChat, line
from tests.test_gui_support import press, pump, shown_root, type_text
from tests.test_gui_widgets import StandIn, connected_app

pytestmark = pytest.mark.gui


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


class ChatEngine(StandIn):
    """The widgets' stand-in engine plus a chat part with two channels and some history."""

    def __init__(self, server: tuple[str, int], nickname: str, **kwargs: Any) -> None:
        super().__init__(server, nickname, **kwargs)
        chat = self.chat = FakeChat(nickname, self.events, ["bob", "carol"])
        chat.store(line("bob", "#room", "yesterday in the room"),
                   line("alice", "#room", "my old line"),
                   line("carol", "#games", "old game talk"),
                   line("alice", "bob", "an old private line"))

    def start(self, timeout: float = 5.0) -> None:
        super().start(timeout)
        self.chat.start(["#room", "#games"], {"#room": ["bob", "carol"], "#games": ["carol"]})


def chat_app(root: tk.Tk, tmp_path: Path) -> App:
    return connected_app(root, tmp_path, ChatEngine)


def double_click(widget: tk.Misc) -> None:
    widget.update()
    for _ in range(2):
        widget.event_generate("<ButtonPress-1>", x=5, y=5, time=1000)
        widget.event_generate("<ButtonRelease-1>", x=5, y=5, time=1000)
    widget.update()


def content(app: App, key: str | None) -> str:
    return app.tabs[key].view.content()


def test_channels_history_marker_and_members(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    chat: FakeChat = app.engine.chat
    assert app.sidebar is not None and app.topic_bar is not None
    assert app.sidebar.targets() == ["#room", "#games"]
    # history was asked for on open, shown once (the service's replay is not shown again),
    # above the marker; our old line is ours
    assert ("history", "#room", 100) in chat.calls
    room = content(app, None).split("\n")
    assert sum("yesterday in the room" in x for x in room) == 1
    marker = next(i for i, x in enumerate(room) if x == MARKER)
    assert marker > next(i for i, x in enumerate(room) if "my old line" in x)
    assert app.lines_of(app.room).marker_line() == marker + 1
    assert app.room.view.text.tag_ranges("history")
    assert "old game talk" in content(app, "#games")
    # the roster shows the members of the channel shown
    tree = app.roster.tree
    assert [tree.item(i, "text") for i in tree.get_children()] == ["alice (you)", "bob", "carol"]
    app.sidebar.tree.selection_set("t:#games")
    pump(root, lambda: app.current_tab() is app.tabs["#games"])
    assert [tree.item(i, "text") for i in tree.get_children()] == ["alice (you)", "carol"]
    assert app.roster.count_var.get() == "#games · 2"
    assert app.topic_bar.name_var.get() == "#games"
    assert app.topic_bar.topic_var.get() == NO_TOPIC
    # a private conversation opened later loads its history too
    app.open_private("bob")
    assert "an old private line" in content(app, "bob")
    assert app.sidebar.targets() == ["#room", "#games", "bob"]
    # Alt+Up / Alt+Down walk the list, round and round
    press(app.tabs["bob"].input.text, "<Alt-Down>")
    assert app.current_tab() is app.room
    press(app.room.input.text, "<Alt-Up>")
    assert app.current_tab() is app.tabs["bob"]
    press(app.tabs["bob"].input.text, "<Alt-Up>")
    assert app.current_tab() is app.tabs["#games"]


def test_join_part_unread_and_mentions(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    chat: FakeChat = app.engine.chat
    sidebar = app.sidebar
    assert sidebar is not None
    app.room.input.set("/join #chess")
    app.room.input.text.event_generate("<Return>")
    pump(root, lambda: "#chess" in app.tabs and app.current_tab() is app.tabs["#chess"])
    assert ("join", "#chess") in chat.calls
    assert sidebar.targets() == ["#room", "#chess", "#games"]
    # messages elsewhere count as unread; one naming us is highlighted
    app.handle(cev.ChannelMessage("#games", "carol", "anyone?", line("carol", "#games", "x")))
    app.handle(cev.ChannelMessage("#games", "carol", "hi", line("carol", "#games", "y")))
    assert sidebar.label_of("#games") == "#games 2"
    assert sidebar.tags_of("#games") == ("unread",)
    app.handle(cev.ChannelMessage("#room", "bob", "alice: look", line("bob", "#room", "z")))
    assert sidebar.label_of("#room") == "#room 1"
    assert sidebar.tags_of("#room") == ("mention",)
    assert app.room.view.text.tag_ranges("mention")     # and the line itself stands out
    app.handle(cev.ChannelMessage("#room", "bob", "malice", line("bob", "#room", "w")))
    app.handle(cev.ChannelMessage("#games", "carol", "malice", line("carol", "#games", "v")))
    assert sidebar.tags_of("#games") == ("unread",)           # "malice" does not name alice
    app.open_channel("#room")
    root.update()
    assert sidebar.label_of("#room") == "#room" and sidebar.tags_of("#room") == ()
    # /part in a channel leaves that channel; the list follows
    app.open_channel("#chess")
    app.run_input(app.tabs["#chess"], "/part")
    root.update()
    assert ("part", "#chess", "") in chat.calls
    pump(root, lambda: "#chess" not in app.tabs)
    assert sidebar.targets() == ["#room", "#games"]
    assert "You left #chess." in app.current_tab().view.content()
    # the list's menu: leave a channel, close a private conversation
    sidebar.menu_for("#games").invoke(0)
    pump(root, lambda: "#games" not in app.tabs)
    assert ("part", "#games", "") in chat.calls and sidebar.targets() == ["#room"]
    app.open_private("bob")
    sidebar.menu_for("bob").invoke(0)
    assert "bob" not in app.tabs and sidebar.targets() == ["#room"]
    app.run_input(app.room, "/join #games")
    pump(root, lambda: "#games" in app.tabs)
    # a join of someone else in our channel: a line, and the member list grows
    app.handle(cev.ChannelJoined("#games", "dave", True))
    assert "dave joined #games" in content(app, "#games")
    # a peer whose key changed: each of its lines carries the warning, as today
    from client import events as ev
    app.handle(ev.KeyChanged("carol", "AAAA", "BBBB"))
    app.handle(cev.ChannelMessage("#games", "carol", "trust me", line("carol", "#games", "t")))
    assert "carol  [UNVERIFIED KEY CHANGE] t" in content(app, "#games")


def test_topic_bar_shows_and_edits(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    chat: FakeChat = app.engine.chat
    bar = app.topic_bar
    assert bar is not None
    app.handle(cev.TopicChanged("#room", "Welcome 🎉", "bob"))
    assert bar.name_var.get() == "#room"
    assert bar.topic_var.get() == "Welcome 🎉  (set by bob)"
    assert "bob set the topic: Welcome 🎉" in content(app, None)
    double_click(bar.topic_label)
    assert bar.editing and bar.entry.get() == "Welcome 🎉"
    bar.entry.delete(0, "end")
    bar.entry.insert(0, "LAN party at 8")
    bar.entry.event_generate("<Return>")
    pump(root, lambda: bar.topic_var.get().startswith("LAN party at 8"))
    assert ("set_topic", "#room", "LAN party at 8") in chat.calls
    assert not bar.editing
    # /topic typed in #games (no channel named) sets #games' topic
    app.open_channel("#games")
    app.run_input(app.tabs["#games"], "/topic chess later")
    pump(root, lambda: bar.topic_var.get().startswith("chess later"))
    assert ("set_topic", "#games", "chess later") in chat.calls
    # a private conversation: the other person's away text, not editable
    app.handle(cev.AwayChanged("bob", "lunch"))
    app.open_private("bob")
    root.update()
    assert bar.name_var.get() == "bob" and bar.topic_var.get() == "away: lunch"
    double_click(bar.topic_label)
    assert not bar.editing


def test_away_is_greyed_with_its_text(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    app.handle(cev.AwayChanged("carol", "at lunch 🍕"))
    assert app.roster.text_of("carol") == "carol (away)"
    assert app.roster.tree.item("n:carol", "tags") == ("away",)
    assert app.roster.away_text("carol") == "at lunch 🍕"
    tree = app.roster.tree
    x, y, _w, h = tree.bbox("n:carol")
    tree.event_generate("<Motion>", x=x + 20, y=y + h // 2)   # hovering carol's row
    pump(root, lambda: app.roster.tooltip._top is not None, what="the tooltip")
    assert app.roster.tooltip.text == "carol is away: at lunch 🍕"
    tree.event_generate("<Leave>")
    assert app.roster.tooltip._top is None
    app.handle(cev.AwayChanged("carol", None))
    assert app.roster.text_of("carol") == "carol"
    app.run_input(app.room, "/away brb")
    pump(root, lambda: app.roster.tree.item("me", "text") == "alice (you, away)")
    assert "You are away: brb" in content(app, None)


def test_join_dialog_validates_names(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    dialog = app.open_join_dialog()
    assert dialog is not None
    assert str(dialog.join_button.cget("state")) == "disabled"   # a bare "#"
    assert dialog.error_var.get() == ""
    dialog.name_var.set("games")
    assert dialog.error_var.get() == "channel names start with #"
    assert str(dialog.join_button.cget("state")) == "disabled"
    dialog.name_var.set("#two words")
    assert dialog.error_var.get() == "channel names cannot contain spaces"
    dialog.join()                                              # refused: stays open
    assert dialog.top.winfo_exists()
    # known channels we are not in can be picked
    assert dialog.known[0].name == "#music"
    dialog.listbox.selection_set(0)
    dialog.listbox.event_generate("<<ListboxSelect>>")
    root.update()
    assert dialog.name_var.get() == "#music" and dialog.error_var.get() == ""
    dialog.join()
    assert not dialog.top.winfo_exists()
    pump(root, lambda: "#music" in app.tabs)
    assert ("join", "#music") in app.engine.chat.calls


def test_commands_in_the_input_line(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    chat: FakeChat = app.engine.chat
    room = app.room
    type_text(room.input.text, "hello all")
    room.input.text.event_generate("<Return>")
    assert ("message", "#room", "hello all") in chat.calls
    assert room.view.content().split("\n")[-2].endswith("alice  hello all")
    # an engine's "not delivered" for a line it has no id of ours for: found by its text
    from client import events as ev
    app.handle(ev.NotDelivered("bob", "hello all", 0))
    assert room.view.content().split("\n")[-2].endswith("hello all  ✗ not delivered to bob")
    app.run_input(room, "/help")
    assert help_lines()[0] in room.view.content()
    room.input.set("/frobnicate")
    room.input.submit()
    assert "unknown command /frobnicate; /help lists them" in room.view.content()
    assert room.input.get() == "/frobnicate"                   # kept, to be corrected
    room.input.set("/join games")
    room.input.submit()
    assert "channel names start with #" in room.view.content()
    app.run_input(room, "/me waves")
    assert ("action", "#room", "waves") in chat.calls
    assert "* alice  waves" in room.view.content()
    app.run_input(room, "//not a command")
    assert ("message", "#room", "/not a command") in chat.calls
    room.input.set("/msg ghost boo")
    room.input.submit()
    assert "no such nick: ghost is not online" in room.view.content()
    assert room.input.get() == "/msg ghost boo"
    app.run_input(room, "/history #games 5")
    assert "(history) [#games] <carol> old game talk" in room.view.content()
    app.run_input(room, "/nick alicia")
    pump(root, lambda: app.nickname == "alicia")
    assert "alice is now known as alicia" in content(app, None)
    assert root.title() == "OpenLChat — alicia"


def test_private_message_states(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    chat: FakeChat = app.engine.chat
    app.run_input(app.room, "/msg dave see you at 8 😀")     # dave is offline: it waits
    tab = app.tabs["dave"]
    assert app.current_tab() is tab
    pump(root, lambda: "⏳ waiting" in tab.view.content())
    sent = chat.stored["dave"][-1]
    lines = app.lines_of(tab)
    assert lines.state_of(sent.msg_id) == "waiting"
    assert tab.view.content().split("\n")[-2].endswith("see you at 8 😀  ⏳ waiting")
    app.handle(cev.DeliveredLater("dave", sent.text, sent.msg_id))
    assert lines.state_of(sent.msg_id) == "delivered"
    assert tab.view.content().split("\n")[-2].endswith("see you at 8 😀  ✓ delivered")
    app.run_input(tab, "second one")
    pump(root, lambda: "second one  ⏳ waiting" in tab.view.content())
    second = chat.stored["dave"][-1]
    app.handle(cev.Failed("dave", second.text, second.msg_id))
    assert "second one  ✗ not delivered" in tab.view.content()
    assert "see you at 8 😀  ✓ delivered" in tab.view.content()
    # waiting from an earlier run (the line is not in the view): shown with its state
    old = line("alice", "erin", "from yesterday")
    app.handle(cev.Waiting("erin", old.text, old.msg_id))
    assert "from yesterday  ⏳ waiting" in content(app, "erin")
    # a state for a line we cannot find: said in words
    app.handle(cev.DeliveredLater("frank", "gone", b"\x01" * 16))
    assert "delivered to frank: gone" in content(app, "frank")


def test_private_lines_actions_and_rename(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    app.handle(cev.PrivateLine("bob", "psst", line("bob", "alice", "psst")))
    tab = app.tabs["bob"]
    assert "bob  psst" in tab.view.content()
    assert app.sidebar is not None and app.sidebar.tags_of("bob") == ("mention",)
    app.handle(cev.Action("bob", "waves", None, line("bob", "alice", "waves", Kind.ACTION)))
    assert "* bob  waves" in tab.view.content()
    # a first line from someone: already in the history when its event comes, shown as new
    early, first = line("erin", "alice", "hi earlier"), line("erin", "alice", "hello there")
    app.engine.chat.store(early, first)
    app.handle(cev.PrivateLine("erin", "hello there", first))
    erin = app.tabs["erin"]
    shown = erin.view.content().split("\n")
    assert shown.index(MARKER) < next(i for i, x in enumerate(shown) if "hello there" in x)
    assert any("hi earlier" in x for x in shown[:shown.index(MARKER)])
    assert sum("hello there" in x for x in shown) == 1
    assert erin.view.text.tag_ranges("day")        # history from another day: a day line
    assert erin.unread == 1
    app.handle(cev.AwayReply("bob", "on holiday"))
    assert "bob is away: on holiday" in tab.view.content()
    from client import events as ev
    app.handle(ev.Left("bob", rename=True))        # the roster's halves of the rename: quiet
    app.handle(ev.Joined("robert", rename=True))
    assert "bob left" not in content(app, None) and "robert joined" not in content(app, None)
    app.handle(cev.Renamed("bob", "robert"))
    assert "robert" in app.tabs and "bob" not in app.tabs
    assert "bob is now known as robert" in app.tabs["robert"].view.content()
    assert "robert" in app.sidebar.targets()
    assert app.roster.text_of("robert") == "robert"


def test_dark_theme_recolours_the_new_parts(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    app.set_theme("dark")
    assert app.sidebar is not None
    assert str(app.sidebar.tree.tag_configure("mention", "foreground")) == \
        app.colours.error
    assert str(app.room.view.text.tag_cget("history", "foreground")) == app.colours.muted


def test_quit_typed_closes_the_window(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    engine = app.engine
    app.room.input.set("/quit")
    app.room.input.submit()
    pump(root, lambda: app.closed)
    pump(root, lambda: engine.closed_in is not None)


def test_disconnect_and_connect_again(root: tk.Tk, tmp_path: Path) -> None:
    app = chat_app(root, tmp_path)
    app.disconnect()
    assert app.main_frame is None
    app.connect("127.0.0.1:7799", "alice")
    pump(root, lambda: app.main_frame is not None, what="the main window again")
    pump(root, lambda: app.engine.events.empty())
    root.update()
    assert app.sidebar is not None and app.sidebar.targets() == ["#room", "#games"]
    app.handle(cev.ChannelMessage("#games", "carol", "back", line("carol", "#games", "back")))
    assert app.sidebar.label_of("#games") == "#games 1"
