"""client.peer.identity: the long-term key file and human fingerprints."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import nacl.signing
import pytest

from client.peer.identity import (
    IdentityError,
    fingerprint,
    identity_path,
    load_or_create,
    own_fingerprint,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX-only")


def test_created_once_then_loaded(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    assert identity_path(tmp_path).exists()
    second = load_or_create(tmp_path)
    assert bytes(first) == bytes(second)
    assert bytes(load_or_create(tmp_path / "other")) != bytes(first)


def test_created_in_missing_directory(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "a" / "b")
    assert isinstance(key, nacl.signing.SigningKey)


@posix_only
def test_file_is_owner_only(tmp_path: Path) -> None:
    load_or_create(tmp_path)
    assert stat.S_IMODE(identity_path(tmp_path).stat().st_mode) == 0o600


@posix_only
def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    key = load_or_create(tmp_path)
    path = identity_path(tmp_path)
    os.chmod(path, 0o644)
    assert bytes(load_or_create(tmp_path)) == bytes(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", [
    "garbage",
    "openlchat-identity-v1\nnothex\n",
    "openlchat-identity-v1\n" + "00" * 31 + "\n",
    "other-header\n" + "00" * 32 + "\n",
])
def test_damaged_file_is_never_replaced(tmp_path: Path, content: str) -> None:
    path = identity_path(tmp_path)
    path.write_text(content)
    with pytest.raises(IdentityError):
        load_or_create(tmp_path)
    assert path.read_text() == content


def test_binary_garbage_is_an_identity_error(tmp_path: Path) -> None:
    identity_path(tmp_path).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(IdentityError):
        load_or_create(tmp_path)


def test_fingerprint_format() -> None:
    key = nacl.signing.SigningKey(bytes(32))
    fp = own_fingerprint(key)
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", fp)
    assert fp == fingerprint(bytes(key.verify_key))
    assert fp == own_fingerprint(nacl.signing.SigningKey(bytes(32)))  # deterministic
    assert fp != own_fingerprint(nacl.signing.SigningKey(b"\x01" * 32))
