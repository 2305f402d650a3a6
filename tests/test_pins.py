"""client.peer.pins: trust on first use, persisted."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from client.peer.pins import PINS_FILE, PinStore

A = b"\xaa" * 32
B = b"\xbb" * 32


def test_check_new_same_changed() -> None:
    pins = PinStore()
    assert pins.check("alice", A) == "new"
    pins.pin("alice", A)
    assert pins.check("alice", A) == "same"
    assert pins.check("alice", B) == "changed"
    assert pins.check("bob", A) == "new"
    assert len(pins) == 1


def test_persisted_and_reloaded(tmp_path: Path) -> None:
    pins = PinStore.in_dir(tmp_path)
    pins.pin("alice", A)
    pins.pin("алиса", B, verified=True)
    again = PinStore.in_dir(tmp_path)
    assert again.check("alice", A) == "same"
    assert again.check("алиса", B) == "same"
    assert again.is_verified("алиса")
    assert not again.is_verified("alice")
    assert again.nicknames() == ["alice", "алиса"]


def test_mark_verified_is_remembered(tmp_path: Path) -> None:
    pins = PinStore.in_dir(tmp_path)
    assert not pins.mark_verified("alice")  # nothing pinned
    pins.pin("alice", A)
    assert pins.mark_verified("alice")
    assert PinStore.in_dir(tmp_path).is_verified("alice")


def test_mark_verified_with_new_key_replaces_pin(tmp_path: Path) -> None:
    pins = PinStore.in_dir(tmp_path)
    pins.pin("alice", A)
    assert pins.mark_verified("alice", B)
    again = PinStore.in_dir(tmp_path)
    assert again.check("alice", B) == "same"
    assert again.is_verified("alice")


def test_changed_key_does_not_replace_pin() -> None:
    pins = PinStore()
    pins.pin("alice", A, verified=True)
    assert pins.check("alice", B) == "changed"
    assert pins.get("alice").key == A
    assert pins.is_verified("alice")


def test_forget(tmp_path: Path) -> None:
    pins = PinStore.in_dir(tmp_path)
    pins.pin("alice", A)
    pins.forget("alice")
    assert PinStore.in_dir(tmp_path).check("alice", A) == "new"


def test_wrong_key_length_rejected() -> None:
    with pytest.raises(ValueError):
        PinStore().pin("alice", b"short")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX-only")
def test_file_is_owner_only(tmp_path: Path) -> None:
    PinStore.in_dir(tmp_path).pin("alice", A)
    assert stat.S_IMODE((tmp_path / PINS_FILE).stat().st_mode) == 0o600


def test_damaged_entries_skipped(tmp_path: Path) -> None:
    (tmp_path / PINS_FILE).write_text(json.dumps({"version": 1, "pins": {
        "good": {"key": A.hex(), "verified": True},
        "short": {"key": "abcd", "verified": False},
        "nothex": {"key": "zz" * 32},
        "badflag": {"key": A.hex(), "verified": "yes"},
        "notdict": 5,
    }}))
    pins = PinStore.in_dir(tmp_path)
    assert pins.nicknames() == ["good"]
    assert pins.is_verified("good")


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"pins": [1]}', ""])
def test_damaged_file_gives_empty_store(tmp_path: Path, content: str) -> None:
    (tmp_path / PINS_FILE).write_text(content)
    pins = PinStore.in_dir(tmp_path)
    assert len(pins) == 0
    pins.pin("alice", A)  # and it can be saved over
    assert PinStore.in_dir(tmp_path).check("alice", A) == "same"


def test_nicknames_compared_in_canonical_form(tmp_path: Path) -> None:
    pins = PinStore.in_dir(tmp_path)
    pins.pin("Alice", A)
    assert pins.check("alice", A) == "same"
    assert pins.check("ＡＬＩＣＥ", B) == "changed"  # width and case folded: same nickname
    assert pins.check("Вася", A) == "new"
    pins.pin("Вася", A)
    assert PinStore.in_dir(tmp_path).check("вася", A) == "same"
    assert pins.mark_verified("ALICE")
    assert pins.is_verified("alice")
