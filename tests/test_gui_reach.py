"""The window's reachability parts (issue 10), with the stand-in engine of test_gui_widgets:
the network check dialog, a notice in the room, the path in "Who is this?", and the servers
heard on the LAN offered on the connect screen."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client import events as ev
from client.gui import App, WhoisDialog
from client.gui.netcheck import NetcheckDialog
from tests.test_gui_support import pump, shown_root
from tests.test_gui_widgets import StandIn, lines

pytestmark = pytest.mark.gui

NETCHECK = ["server: 127.0.0.1:7799 (online)", "behind NAT: yes",
            "unsolicited UDP reaches us: no (only peers we write to first reach us)"]


class ReachStandIn(StandIn):
    def netcheck(self) -> list[str]:
        return list(NETCHECK)

    def whois(self, nick: str) -> ev.Whois:
        return ev.Whois(nick, "AB12 CD34 EF56", path="direct through NAT 203.0.113.2:4000, "
                                                     "rtt 12 ms")


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


def connected(root: tk.Tk, tmp_path: Path) -> Any:
    app = App(root, config_dir=tmp_path, engine_factory=ReachStandIn)
    app.connect("127.0.0.1:7799", "alice")
    pump(root, lambda: app.main_frame is not None, what="the main window")
    return app


def test_network_check_dialog_and_notices(root: tk.Tk, tmp_path: Path) -> None:
    app = connected(root, tmp_path)
    dialog = NetcheckDialog(app)
    pump(root, lambda: "behind NAT: yes" in dialog.text.get("1.0", "end"), what="the report")
    assert dialog.text.get("1.0", "end").strip() == "\n".join(NETCHECK)
    dialog.top.destroy()
    app.engine.events.put(ev.Notice("nickname clash on this network: bob is announced by 2 "
                                    "different keys"))
    pump(root, lambda: any("clash" in line for line in lines(app.room.view)), what="notice")
    whois = WhoisDialog(app, "bob")
    pump(root, lambda: not whois.fetching, what="whois")
    assert "Path: direct through NAT 203.0.113.2:4000, rtt 12 ms" in whois.state_var.get()
    whois.top.destroy()
    app.close()


def test_connect_screen_offers_the_servers_heard(root: tk.Tk, tmp_path: Path) -> None:
    app = App(root, config_dir=tmp_path, engine_factory=ReachStandIn)
    form = app.connect_frame
    form.server_var.set("")
    form.set_servers(["10.0.0.5:7700", "10.0.0.6:7700"])
    assert list(form.server_entry.cget("values")) == ["10.0.0.5:7700", "10.0.0.6:7700"]
    assert form.server_var.get() == "10.0.0.5:7700"
    assert form.hint.cget("text").startswith("2 found on this network")
    app.close()
