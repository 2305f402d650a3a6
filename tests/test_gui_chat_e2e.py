"""Issue 11 end to end: the window with the real engine and its chat part, a real server and a
terminal client in a subprocess (channels, topic, members, away, history after a restart)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.gui.lines import MARKER
from tests.test_gui import WAIT, open_app, terminal  # noqa: F401 (a fixture)
from tests.test_gui_support import pump, shown_root

pytestmark = pytest.mark.gui


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


def test_channel_topic_members_away_and_history_after_a_restart(
        root: tk.Tk, tmp_path: Path, server, terminal) -> None:  # noqa: F811 (the fixture)
    bob = terminal(server.address, "bob")
    bob.wait_registered(root)
    bob.say("/join #games")
    bob.say("/topic #games Quake tonight")
    app = open_app(root, tmp_path, server.address, "alice")
    pump(root, lambda: "bob" in app.roster.nicks, WAIT, what="bob in the roster")
    assert app.sidebar is not None and app.topic_bar is not None
    app.run_input(app.room, "/join #games")
    pump(root, lambda: "#games" in app.tabs and app.current_tab() is app.tabs["#games"], WAIT,
         what="the #games tab")
    bob.wait_line(root, "-!- alice joined #games")
    pump(root, lambda: app.topic_bar.topic_var.get().startswith("Quake tonight"), WAIT,
         what="the topic")
    pump(root, lambda: app.roster.count_var.get() == "#games · 2", WAIT, what="the members")
    bob.say("/msg #games hi gamers")
    pump(root, lambda: "bob  hi gamers" in app.tabs["#games"].view.content(), WAIT,
         what="bob's line")
    app.run_input(app.tabs["#games"], "hello bob")
    bob.wait_line(root, "[#games] <alice> hello bob")
    bob.say("/away lunch")
    pump(root, lambda: app.roster.away_text("bob") == "lunch", WAIT, what="bob away")
    assert app.roster.text_of("bob") == "bob (away)"
    app.close()
    # the next run: #games is rejoined and shows its history above the marker
    again = open_app(tk.Tk(), tmp_path, server.address, "alice")
    try:
        pump(again.root, lambda: "#games" in again.tabs, WAIT, what="#games rejoined")
        shown = again.tabs["#games"].view.content().split("\n")
        assert MARKER in shown
        before = shown[:shown.index(MARKER)]
        assert any("hi gamers" in x for x in before) and any("hello bob" in x for x in before)
    finally:
        again.close()
