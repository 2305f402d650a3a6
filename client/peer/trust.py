"""What a secure transport does with pins: check each new session's key, report changes, save.

Trust on first use (``client.peer.pins``): a new peer's key is pinned (saved a moment later, so
a burst of new peers costs one write and no handshake waits for the disk); a different key is
reported once per key (``KeyChanged``) and marks the session, never replacing the pin.
"""

from __future__ import annotations

import logging

from client.events import KeyChanged
from client.peer.handshake import Handshaker
from client.peer.identity import fingerprint as key_fingerprint
from client.peer.pins import PinStore
from client.peer.sealed import Session

log = logging.getLogger(__name__)


WARNING_KEY_CHANGED = "UNVERIFIED KEY CHANGE"


class Trust:
    """The transport's view of a PinStore; ``events`` is the transport's event list."""

    def __init__(self, pins: PinStore, events: list[object], save_delay: float) -> None:
        self.pins = pins
        self._events = events
        self._save_delay = save_delay
        self.save_due: float | None = None  # when to save new pins (coalesced)

    def check(self, peer: str, session: Session, old: Session | None, now: float) -> None:
        """A handshake with ``peer`` completed (``old``: the session it replaces)."""
        status = self.pins.check(peer, session.peer_key)
        if status == "new":
            # Saving (an fsync: milliseconds, more on a busy disk) waits save_delay in
            # on_timer, so it never delays a handshake and a burst of new peers costs one write.
            self.pins.pin(peer, session.peer_key, save=False)
            if self.save_due is None:
                self.save_due = now + self._save_delay
        elif status == "changed":
            session.key_changed = True
            pinned = self.pins.get(peer)
            old_fp = key_fingerprint(pinned.key) if pinned else "?"
            new_fp = key_fingerprint(session.peer_key)
            # once per new key, not once per session with it
            if old is None or old.peer_key != session.peer_key:
                self._events.append(KeyChanged(peer, old_fp, new_fp))
            log.warning("KEY CHANGED for %s: pinned %s, now %s", peer, old_fp, new_fp)

    def on_timer(self, now: float) -> None:
        if self.save_due is not None and now >= self.save_due:
            self.save()

    def save(self) -> None:
        """Write pins not written yet (now, e.g. when the transport closes; also those a
        busy lock kept from being written before)."""
        if self.save_due is not None or self.pins.dirty:
            self.save_due = None
            self.pins.save()

    def key_of(self, peer: str, session: Session | None) -> bytes | None:
        """The key ``peer`` proved in ``session`` (the live one), else its pinned key."""
        if session is not None:
            return session.peer_key
        pin = self.pins.get(peer)
        return None if pin is None else pin.key

    def fingerprint(self, peer: str, session: Session | None) -> str | None:
        key = self.key_of(peer, session)
        return None if key is None else key_fingerprint(key)

    def is_verified(self, peer: str, session: Session | None) -> bool:
        pin = self.pins.get(peer)
        return pin is not None and pin.verified and pin.key == self.key_of(peer, session)

    def mark_verified(self, peer: str, session: Session | None) -> bool:
        """Pin the key of ``session`` (else the pinned one) as verified; clears a key change."""
        if session is not None:
            self.pins.mark_verified(peer, session.peer_key)
            session.key_changed = False
            log.info("key of %s marked verified", peer)
            return True
        return self.pins.mark_verified(peer)


class TrustQueries:
    """The transport's answers about keys and trust: what the faces ask (``/whois``, "Who is
    this?", the ⚠ mark), from the live session when there is one, else from the pins."""

    _trust: Trust
    _hs: Handshaker

    def _session(self, peer: str) -> Session | None:
        raise NotImplementedError

    def own_fingerprint(self) -> str:
        return key_fingerprint(self._hs.my_key)

    def fingerprint(self, peer: str) -> str | None:
        """Fingerprint of the key ``peer`` proved in the live session, else of its pinned key."""
        return self._trust.fingerprint(peer, self._session(peer))

    def warning_for(self, peer: str) -> str | None:
        """A warning to show on every message from ``peer``, or None."""
        s = self._session(peer)
        return WARNING_KEY_CHANGED if s is not None and s.key_changed else None

    def key_changed(self, peer: str) -> bool:
        return self.warning_for(peer) is not None

    def is_verified(self, peer: str) -> bool:
        """True when the user verified the key ``peer`` uses now (or its pin, if no session)."""
        return self._trust.is_verified(peer, self._session(peer))

    def mark_verified(self, peer: str) -> bool:
        """The user compared fingerprints: pin the peer's current key as verified.

        After a key change this accepts the new key and clears the warning. False when there
        is no key known for ``peer``.
        """
        return self._trust.mark_verified(peer, self._session(peer))

    def identity_key(self, peer: str) -> bytes | None:
        return self._trust.key_of(peer, self._session(peer))
