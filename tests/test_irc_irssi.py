"""A real irssi (Debian's package) in tmux on the gateway, talking with a terminal user.
Skipped with the reason where irssi or tmux is not installed (.ci/run installs both)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

from tests.irc_support import gateway_user, terminal_user

pytestmark = [
    pytest.mark.skipif(shutil.which("irssi") is None or shutil.which("tmux") is None,
                       reason="irssi and tmux are not installed (apt-get install irssi tmux)"),
    pytest.mark.parametrize("server", [{"ping_interval": 0.5}], indirect=True),
]


class Tmux:
    def __init__(self, command: list[str], cwd) -> None:
        self.name = f"irc-{uuid.uuid4().hex[:8]}"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "45",
                        *command], check=True, cwd=cwd)

    def keys(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def wait(self, text: str, timeout: float = 10.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on the irssi screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_irssi_in_tmux(server, tmp_path):
    with terminal_user(server, tmp_path / "b") as (bob, b_in, b_out), \
            gateway_user(server, tmp_path / "a") as (alice, gw):
        host, port = gw.address
        home = tmp_path / "irssi"
        home.mkdir()
        irssi = ["env", "TERM=screen", "irssi", "--noconnect", f"--home={home}", "-n", "alice"]
        term = Tmux(irssi, tmp_path)

        def connect(term: Tmux) -> None:
            term.wait("[(status)]")
            # irssi paces its commands (2.2 s apart after a burst): not what this test measures
            term.keys("/set cmd_queue_speed 0")
            term.wait("cmd_queue_speed 0")
            term.keys(f"/connect 127.0.0.1 {port}")
            term.wait("Welcome to OpenLChat")

        def said(pred) -> None:
            try:
                b_out.wait_line(pred, 10)
            except AssertionError as exc:
                raise AssertionError(f"irssi shows:\n{term.screen()}") from exc

        try:
            connect(term)
            term.keys("/join #games")
            term.wait("alice [alice@openlchat] has joined #games")
            b_in.put("/join #games")
            term.wait("bob [bob@openlchat] has joined #games")
            term.keys("hello from irssi")
            said(lambda x: x == "[#games] <alice> hello from irssi")
            b_in.put("/msg #games hello irssi user")
            term.wait("hello irssi user")
            term.keys("/me waves")
            said(lambda x: x == "[#games] * alice waves")
            term.keys("/topic from irssi")
            said(lambda x: x == "-!- #games topic: from irssi (set by alice)")
            term.keys("/whois bob")
            term.keys("/window 1")  # irssi shows WHOIS replies in the status window
            term.wait(bob.own_fingerprint()[:9])
            term.keys("/away lunch")
            term.wait("You have been marked as being away")
            term.keys("/nick alicia")
            said(lambda x: x == "-!- alice is now known as alicia")
            term.keys("/quit")
            time.sleep(0.3)
        finally:
            term.kill()
        # reattach: the channels come back with their history (irssi asks for server-time)
        b_in.put("/msg #games while irssi was away")
        term = Tmux(irssi, tmp_path)
        try:
            connect(term)
            term.keys("/window goto #games")
            screen = term.wait("while irssi was away")
            assert "hello from irssi" in screen
        finally:
            term.kill()
        assert "alice left" not in b_out.getvalue()  # detaching is invisible to peers
