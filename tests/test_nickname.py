"""Nickname rules: PRECIS forms, uniqueness keys, and what is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import nickname
from models.errors import ProtocolError


@pytest.mark.parametrize(
    ("a", "b"),
    [("Вася", "вася"), ("Ｅｖａｎ", "evan"), ("EVAN", "evan"), ("ВАСЯ", "вася"), ("Ǆ", "ǆ")],
)
def test_same_nickname_case_and_width(a: str, b: str) -> None:
    assert nickname.canonical(a) == nickname.canonical(b)
    assert nickname.same_nickname(a, b)


def test_display_form_keeps_case_and_folds_width() -> None:
    assert nickname.display_form("Вася") == "Вася"
    assert nickname.display_form("Ｅｖａｎ") == "Evan"
    assert nickname.normalize("Evan") == ("Evan", "evan")


def test_different_nicknames_differ() -> None:
    assert not nickname.same_nickname("evan", "evan2")
    assert not nickname.same_nickname("evan", "bad nick")


@pytest.mark.parametrize(
    "raw",
    ["", "a b", "a\tb", "a\nb", "a\x00b", "a\x7fb", "a\u200bb", "a\xa0b", "a\u3000b",
     "x" * 25, "\U0010ffff", "\ud800", "a\u202eb"],
)
def test_rejected(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        nickname.normalize(raw)
    assert info.value.code == "BAD_NICK"
    assert not nickname.is_valid(raw)


def test_length_limits() -> None:
    assert nickname.is_valid("x")
    assert nickname.is_valid("я" * 24)
    assert not nickname.is_valid("я" * 25)
    assert not nickname.is_valid("x" * 1000)


def test_not_a_string() -> None:
    with pytest.raises(ProtocolError):
        nickname.normalize(b"evan")  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_any_text_valid_or_bad_nick(raw: str) -> None:
    try:
        display, key = nickname.normalize(raw)
    except ProtocolError as exc:
        assert exc.code == "BAD_NICK"
        return
    assert 1 <= len(display) <= 24 and 1 <= len(key) <= 24
    assert not any(ch.isspace() for ch in display)
    # idempotent: the display form normalizes to itself and to the same key
    assert nickname.normalize(display) == (display, key)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
               max_size=24))
def test_ascii_fast_path_agrees_with_precis(raw: str) -> None:
    from precis_i18n import get_profile

    want = (get_profile("NicknameCasePreserved").enforce(raw),
            get_profile("NicknameCaseMapped").enforce(raw))
    assert nickname.normalize(raw) == want


def test_every_printable_ascii_character_agrees_with_precis() -> None:
    from precis_i18n import get_profile

    for code in range(0x21, 0x7F):
        raw = "a" + chr(code)
        assert nickname.normalize(raw) == (
            get_profile("NicknameCasePreserved").enforce(raw),
            get_profile("NicknameCaseMapped").enforce(raw))
