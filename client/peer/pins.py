"""Trust on first use: the identity key pinned for each nickname, and whether it was verified.

Persisted as ``pins.json`` in the config directory::

    {"version": 1, "pins": {"alice": {"key": "<64 hex digits>", "verified": false}}}

Nicknames are pinned under their canonical form (``models.nickname.canonical``: case- and
width-folded), so "Alice" registering after "alice" left meets alice's pin, not a fresh one.

The first key seen for a nickname is pinned. A different key later is reported as ``"changed"``
and the pin is NOT replaced: only the user replaces it (``mark_verified`` with the new key,
after comparing fingerprints aloud). Damaged entries are skipped and logged, never fatal.

Clients sharing a config directory share the file: ``save`` re-reads it under a lock between
processes (``client.locks``) and writes our changes over what the others saved, so no process
loses another's pins; what the others pinned meanwhile becomes ours too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from client.config import load_json, save_json
from client.locks import locked
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
        self._changed: dict[str, Pin | None] = {}  # since the last save; None: forgotten
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
        self._set(_key(nick), Pin(key, verified))
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
            self._set(_key(nick), Pin(pin.key, True))
            self.save()
        return True

    def is_verified(self, nick: str) -> bool:
        pin = self._pins.get(_key(nick))
        return pin is not None and pin.verified

    def forget(self, nick: str) -> None:
        if self._pins.pop(_key(nick), None) is not None:
            self._changed[_key(nick)] = None
            self.dirty = True
            self.save()

    def nicknames(self) -> list[str]:
        return sorted(self._pins)

    def __len__(self) -> int:
        return len(self._pins)

    def save(self) -> None:
        """Our changes since the last save, written over the file as it is now."""
        self.dirty = False
        if self.path is None:
            self._changed.clear()
            return
        changed = self._changed
        try:
            with locked(self.path):
                merged: dict[str, Pin] = {}
                self._read(self.path, merged)
                for nick, pin in changed.items():
                    if pin is None:
                        merged.pop(nick, None)
                    else:
                        merged[nick] = pin
                data = {"version": 1, "pins": {
                    nick: {"key": pin.key.hex(), "verified": pin.verified}
                    for nick, pin in sorted(merged.items())}}
                save_json(self.path, data, private=True)
        except OSError as exc:
            # Losing a pin weakens TOFU but must not stop the chat; the next save tries again.
            self.dirty = True
            log.warning("cannot save pinned keys to %s: %s", self.path, exc)
            return
        self._changed = {}
        self._pins = merged

    def _set(self, nick: str, pin: Pin) -> None:
        self._pins[nick] = self._changed[nick] = pin
        self.dirty = True

    def _load(self, path: Path) -> None:
        self._read(path, self._pins)

    @staticmethod
    def _read(path: Path, into: dict[str, Pin]) -> None:
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
                into[_key(nick)] = pin
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
