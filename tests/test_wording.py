"""Plain words shared by both faces (client/wording.py) and the typed-input rules in
client/config.py: pure, no display, no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client import errors, wording
from client.config import DEFAULT_PORT, BadServerAddress, format_address, parse_server
from models.nickname import MAX_NICK_LEN

ROOT = Path(__file__).resolve().parent.parent


def codes_the_server_sends() -> set[str]:
    """Every ERROR code the server (server.py, dirserver/, models/) can answer with."""
    found: set[str] = set()
    sources = [ROOT / "server.py", *sorted((ROOT / "dirserver").glob("*.py")),
               *sorted((ROOT / "models").glob("*.py"))]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'(?:Refused|_reply_error)\((?:sock, )?"([A-Z_]+)"', text))
    return found


def test_every_code_the_server_sends_has_plain_words() -> None:
    codes = codes_the_server_sends()
    assert {"NICK_TAKEN", "BAD_NICK", "THROTTLED", "STORAGE", "TOO_MANY_CONNECTIONS"} <= codes
    for code in codes:
        for cls in (errors.RegistrationError,):
            text = wording.describe_error(cls(code, "some detail"), "bob", "h:1")
            assert "refused to let us in" not in text, (code, text)   # not the fallback
            assert code not in text, text                            # words, not a code


def test_codes_the_server_never_sends_are_not_mapped() -> None:
    assert not {"NICK_IN_USE", "SERVER_FULL"} & set(wording._CODES)
    text = wording.describe_error(errors.RegistrationError("SERVER_FULL", "full"), "bob", "h:1")
    assert text == "The server refused to let us in: full"


def test_errors_are_matched_by_class_not_name() -> None:
    class ServerUnreachable(Exception):   # same name, not ours: not taken for one
        pass

    assert wording.describe_error(ServerUnreachable("x"), "bob", "h:1") == "Could not connect: x"
    down = wording.describe_error(errors.ServerUnreachable("cannot reach h:1: [Errno 111] "
                                                           "Connection refused"), "bob", "h:1")
    assert down.startswith("Cannot reach the server at h:1: connection refused.")
    key = wording.describe_error(errors.IdentityError("identity key x is damaged"), "bob", "h:1")
    assert "identity key" in key


def test_terminal_error_line_has_a_headline() -> None:
    line = wording.error_line(errors.RegistrationError("NICK_TAKEN", "taken"), "bob", "h:1")
    assert line.startswith("refused by the server (NICK_TAKEN): The nickname “bob” is already")
    assert wording.error_line(errors.ServerUnreachable("x"), "bob", "h:1").startswith(
        "server unreachable: Cannot reach the server at h:1")


def test_an_empty_nickname_asks_for_one() -> None:
    for typed in ("", "   "):
        with pytest.raises(ValueError) as info:
            wording.check_nickname(typed)
        assert "choose a nickname" in str(info.value)
        assert "space" not in str(info.value)
    refused = wording.describe_error(
        errors.RegistrationError("BAD_NICK", "nickname must not contain spaces"), "", "h:1")
    assert "choose a nickname" in refused and "spaces" not in refused


def test_check_nickname_follows_the_server_rules() -> None:
    assert wording.check_nickname("x" * MAX_NICK_LEN) == "x" * MAX_NICK_LEN
    assert wording.check_nickname("Ｅｖａｎ") == "Evan"      # the display form the server stores
    with pytest.raises(ValueError, match=f"longer than {MAX_NICK_LEN}"):
        wording.check_nickname("x" * (MAX_NICK_LEN + 1))
    with pytest.raises(ValueError, match="whitespace"):
        wording.check_nickname("two words")
    with pytest.raises(ValueError):
        wording.check_nickname("bell\x07")


def test_sizes_are_iec_everywhere() -> None:
    assert [wording.human_size(n) for n in (0, 1023, 1024, 1536, 2**20, 2**30, 2**40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "1.0 MiB", "1.0 GiB", "1.0 TiB"]


@given(st.text(max_size=40))
def test_parse_server_raises_one_error_type(text: str) -> None:
    try:
        host, port = parse_server(text)
    except BadServerAddress as exc:
        assert isinstance(exc, ValueError) and str(exc).endswith(".")
        return
    assert parse_server(format_address((host, port))) == (host, port)


def test_default_port_is_used_when_omitted() -> None:
    assert parse_server("chat.example.org") == ("chat.example.org", DEFAULT_PORT)
    assert format_address(("::1", 7)) == "[::1]:7"
