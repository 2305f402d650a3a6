"""Trust on first use: the identity key pinned for each nickname, and whether it was verified.

Persisted as ``pins.json`` in the config directory::

    {"version": 1, "pins": {"alice": {"key": "<64 hex digits>", "verified": false}}}

Nicknames are pinned under their canonical form (``models.nickname.canonical``: case- and
width-folded), so "Alice" registering after "alice" left meets alice's pin, not a fresh one.

The first key seen for a nickname is pinned. A different key later is reported as ``"changed"``
and the pin is NOT replaced: only the user replaces it (``mark_verified`` with the new key,
after comparing fingerprints aloud). Damaged entries are skipped and logged, never fatal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from client.config import load_json, save_json
from models.errors import ProtocolError
from models.nickname import canonical

log = logging.getLogger(__name__)

PINS_FILE = "pins.json"
KEY_LEN = 32

PinStatus = Literal["new", "same", "changed"]


@dataclass(frozen=True)
class Pin:
    key: bytes
    verified: bool = False


class PinStore:
    """Nickname -> pinned identity key. ``path=None`` keeps the pins in memory only (tests)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._pins: dict[str, Pin] = {}
        self.dirty = False  # changed since the last save
        if path is not None:
            self._load(path)

    @classmethod
    def in_dir(cls, config_dir: Path) -> PinStore:
        return cls(Path(config_dir) / PINS_FILE)

    def check(self, nick: str, key: bytes) -> PinStatus:
        pin = self._pins.get(_key(nick))
        if pin is None:
            return "new"
        return "same" if pin.key == bytes(key) else "changed"

    def get(self, nick: str) -> Pin | None:
        return self._pins.get(_key(nick))

    def pin(self, nick: str, key: bytes, *, verified: bool = False, save: bool = True) -> None:
        """Pin ``key`` for ``nick`` (replacing any previous pin) and save.

        ``save=False`` only marks the store ``dirty``: the secure transport saves after the
        handshake's answer is out, so a slow disk never delays a handshake.
        """
        key = bytes(key)
        if len(key) != KEY_LEN:
            raise ValueError(f"identity key must be {KEY_LEN} bytes")
        self._pins[_key(nick)] = Pin(key, verified)
        self.dirty = True
        if save:
            self.save()

    def mark_verified(self, nick: str, key: bytes | None = None) -> bool:
        """Remember that the user verified ``nick``'s key (``key`` replaces the pin if given).

        False when there is nothing to verify (no pin and no key).
        """
        if key is not None:
            self.pin(nick, key, verified=True)
            return True
        pin = self._pins.get(_key(nick))
        if pin is None:
            return False
        if not pin.verified:
            self._pins[_key(nick)] = Pin(pin.key, True)
            self.save()
        return True

    def is_verified(self, nick: str) -> bool:
        pin = self._pins.get(_key(nick))
        return pin is not None and pin.verified

    def forget(self, nick: str) -> None:
        if self._pins.pop(_key(nick), None) is not None:
            self.save()

    def nicknames(self) -> list[str]:
        return sorted(self._pins)

    def __len__(self) -> int:
        return len(self._pins)

    def save(self) -> None:
        self.dirty = False
        if self.path is None:
            return
        data = {"version": 1, "pins": {nick: {"key": pin.key.hex(), "verified": pin.verified}
                                       for nick, pin in sorted(self._pins.items())}}
        try:
            save_json(self.path, data, private=True)
        except OSError as exc:
            # Losing a pin weakens TOFU but must not stop the chat.
            log.warning("cannot save pinned keys to %s: %s", self.path, exc)

    def _load(self, path: Path) -> None:
        pins = load_json(path).get("pins", {})
        if not isinstance(pins, dict):
            log.warning("ignoring damaged pins in %s", path)
            return
        skipped = 0
        for nick, entry in pins.items():
            pin = _parse_entry(entry)
            if pin is None:
                skipped += 1
            else:
                self._pins[_key(nick)] = pin
        if skipped:
            log.warning("skipped %d damaged pin(s) in %s", skipped, path)


def _key(nick: str) -> str:
    try:
        return canonical(nick)
    except ProtocolError:
        return nick  # not a valid nickname (never from a roster): pinned as given


def _parse_entry(entry: object) -> Pin | None:
    if not isinstance(entry, dict):
        return None
    key_hex = entry.get("key")
    verified = entry.get("verified", False)
    if not isinstance(key_hex, str) or not isinstance(verified, bool):
        return None
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        return None
    return Pin(key, verified) if len(key) == KEY_LEN else None
