"""The Tk face's pure parts: no display needed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.config import DEFAULT_PORT, parse_server
from client.errors import RegistrationError, ServerUnreachable
from client.gui.attention import NOTIFY_MIN_INTERVAL, Attention, title_for
from client.gui.files import progress_text
from client.gui.theme import NICK_PALETTE, THEMES, contrast, nick_colour
from client.wording import check_nickname, describe_error, human_size


@pytest.mark.parametrize(("text", "expected"), [
    ("example.org", ("example.org", DEFAULT_PORT)),
    (" 10.0.0.5:7801 ", ("10.0.0.5", 7801)),
    ("[::1]:9000", ("::1", 9000)),
    ("[fe80::1]", ("fe80::1", DEFAULT_PORT)),
    ("localhost:", ("localhost", DEFAULT_PORT)),
])
def test_parse_server_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "host:0", "host:70000", "host:abc", "[::1",
                                  ":7700", "a b:1"])
def test_parse_server_refuses_in_plain_words(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_server(text)
    assert str(info.value).endswith(".")     # a sentence for a person, not a repr


@given(st.text(max_size=60))
def test_parse_server_never_raises_anything_but_valueerror(text: str) -> None:
    try:
        host, port = parse_server(text)
    except ValueError:
        return
    assert host and 0 < port < 65536


def test_check_nickname() -> None:
    assert check_nickname("  Вася ") == "Вася"
    for bad in ("", "two words", "x" * 25):
        with pytest.raises(ValueError):
            check_nickname(bad)


def test_describe_error_speaks_plainly() -> None:
    taken = describe_error(RegistrationError("NICK_TAKEN", "nickname bob is taken"), "bob", "h:1")
    assert "already taken" in taken and "bob" in taken
    bad = describe_error(RegistrationError("BAD_NICK", "nickname is empty"), "", "h:1")
    assert "cannot be used as a nickname" in bad
    down = describe_error(ServerUnreachable("connection refused"), "bob", "10.1.1.1:7700")
    assert "Cannot reach the server at 10.1.1.1:7700" in down
    other = describe_error(RegistrationError("SERVER_BUSY", "try later"), "bob", "h:1")
    assert "try later" in other


def test_nick_colour_is_stable_and_readable_on_both_themes() -> None:
    assert nick_colour("alice") == nick_colour("alice")
    assert nick_colour("Вася") in NICK_PALETTE
    # the palette spreads: 200 nicknames use every colour
    assert {nick_colour(f"user{i}") for i in range(200)} == set(NICK_PALETTE)
    for colour in NICK_PALETTE:
        for theme in THEMES.values():
            assert contrast(colour, theme.background) >= 3.3, (colour, theme.name)
    for theme in THEMES.values():
        assert contrast(theme.foreground, theme.background) >= 7
        assert contrast(theme.error, theme.background) >= 3.3


def test_title_shows_unread_count() -> None:
    assert title_for(None, 0) == "OpenLChat"
    assert title_for("alice", 0) == "OpenLChat — alice"
    assert title_for("alice", 3) == "(3) OpenLChat — alice"
    assert "server unreachable" in title_for("alice", 0, server_online=False)


def test_attention_is_rate_limited_and_quiet() -> None:
    att = Attention()
    att._notify_send = None          # whatever this machine has, start nothing
    att.notify("bob", "hi", now=0.0)
    att.notify("bob", "again", now=1.0)                      # too soon: dropped
    att.notify("bob", "later", now=NOTIFY_MIN_INTERVAL + 0.5)
    assert [body for _t, body in att.sent] == ["hi", "later"]
    att.flash(None)                  # not Windows / no handle: nothing, no error
    off = Attention(enabled=False)
    assert off.notify("x", "y", now=0.0) is False and off.sent == []


def test_attention_survives_a_broken_notifier(tmp_path) -> None:
    att = Attention()
    att._notify_send = str(tmp_path / "no-such-notify-send")
    assert att.notify("bob", "hi", now=0.0) is False
    assert att._notify_send is None  # turned off after the first failure, logged once


def test_sizes_and_progress_text() -> None:
    assert human_size(0) == "0 B"
    assert human_size(999) == "999 B"
    assert human_size(2_500_000) == "2.4 MiB"
    assert human_size(5 * 10**12) == "4.5 TiB"
    assert human_size(5 * 2**50) == "5120.0 TiB"
    assert progress_text(1_000_000, 3_000_000, 1_000_000.0) == \
        "976.6 KiB of 2.9 MiB · 976.6 KiB/s · 2 s left"
    assert progress_text(0, 0, 0.0) == "0 B of 0 B"
    assert "min" in progress_text(0, 10**9, 5_000_000.0)
    assert "h left" in progress_text(0, 10**11, 5_000_000.0)


def test_notify_send_gets_peer_text_as_arguments_only(tmp_path) -> None:
    import sys
    if sys.platform == "win32":
        pytest.skip("the stand-in notify-send is a POSIX shell script")
    script = tmp_path / "notify-send"
    out = tmp_path / "argv.txt"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {out}\n", encoding="utf-8")
    script.chmod(0o755)
    att = Attention()
    att._notify_send = str(script)
    assert att.notify("-bob (private)", "--help; rm -rf ~ 😀", now=0.0)
    assert att._children[0].wait(5) == 0          # started, never waited for by the GUI
    assert out.read_text(encoding="utf-8").splitlines() == [
        "--app-name", "OpenLChat", "--", "-bob (private)", "--help; rm -rf ~ 😀"]
    att._reap()
