"""The saved session: our keyword on disk, so a restart after a crash reclaims our nickname.

One small JSON file per server and nickname (compared in the directory's canonical form) in
``sessions/`` of the configuration directory, written privately and atomically: clients that
share a configuration directory (two windows, two users of one terminal server) never overwrite
each other's session. A running client holds its session's lock (``client.locks.hold``), so a
second client started with the same nickname does not take over the first one's registration;
the operating system drops the lock when a client dies, so the restart after a ``kill -9``
reclaims at once. With the directory's MAC extension the file also keeps the MAC key and
counter: reclaiming such a registration needs a proof made with them (``models.dirauth``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client import config
from client.locks import Held, hold
from models.errors import ProtocolError
from models.nickname import canonical

log = logging.getLogger(__name__)

SESSION_DIR = "sessions"
SESSION_FILE = "session.json"  # the one file of earlier versions: still read, never written


def _canonical(nick: str) -> str:
    try:
        return canonical(nick)
    except ProtocolError:
        return nick


@dataclass(frozen=True)
class Saved:
    keyword: str
    mac: tuple[str, int] | None = None  # MAC extension: (key in base64url, counter)


def _parse(data: dict[str, Any], server: str, nickname: str) -> Saved | None:
    saved_nick, kw = data.get("nickname"), data.get("keyword")
    if data.get("server") != server or not isinstance(saved_nick, str) or \
            _canonical(saved_nick) != _canonical(nickname) or not isinstance(kw, str):
        return None
    key, counter = data.get("mac_key"), data.get("mac_counter")
    mac = (key, counter) if isinstance(key, str) and type(counter) is int and counter >= 0 \
        else None
    return Saved(kw, mac)


class SavedSession:
    """The saved sessions for one server (``host:port``)."""

    def __init__(self, config_dir: Path | None, server: tuple[str, int]) -> None:
        self._config_dir = config_dir
        self._server = f"{server[0]}:{server[1]}"
        self._held: Held | None = None
        self._in_use_elsewhere = False

    @property
    def path(self) -> Path:
        """The single session file of earlier versions."""
        return config.config_dir(self._config_dir) / SESSION_FILE

    def path_for(self, nickname: str) -> Path:
        name = hashlib.sha256(f"{self._server}\n{_canonical(nickname)}".encode()).hexdigest()
        return config.config_dir(self._config_dir) / SESSION_DIR / f"{name[:32]}.json"

    def claim(self, nickname: str) -> Saved | None:
        """Take ``nickname``'s session for this process and return what it saved. None, and
        nothing saved later, when another running client holds it (its registration is
        alive: ours is a new one, or NICK_TAKEN)."""
        self.release()
        try:
            self._held = hold(self.path_for(nickname))
        except OSError as exc:  # no config directory: nothing saved, nothing to share
            log.warning("cannot use the saved session (%s)", exc)
            return None
        if self._held is None:
            self._in_use_elsewhere = True
            log.info("the saved session for %s is in use by another running client", nickname)
            return None
        self._in_use_elsewhere = False
        return self.load_saved(nickname)

    def release(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    def load_saved(self, nickname: str) -> Saved | None:
        """What is saved for ``nickname`` on this server, or None."""
        saved = _parse(config.load_json(self.path_for(nickname)), self._server, nickname)
        if saved is None:  # saved by an earlier version?
            saved = _parse(config.load_json(self.path), self._server, nickname)
        return saved

    def load(self, nickname: str) -> str | None:
        """The keyword saved for ``nickname`` on this server, or None."""
        saved = self.load_saved(nickname)
        return None if saved is None else saved.keyword

    def save(self, nickname: str, keyword: str, mac: tuple[str, int] | None = None) -> None:
        """Remember ``keyword`` (and the MAC key and counter) for ``nickname``, as the user
        asked for it; never raises. Nothing is written for a session another client holds."""
        if self._in_use_elsewhere:
            return
        data: dict[str, Any] = {"server": self._server, "nickname": nickname, "keyword": keyword}
        if mac is not None:
            data["mac_key"], data["mac_counter"] = mac
        try:
            config.save_json(self.path_for(nickname), data, private=True)
        except OSError as exc:
            log.warning("cannot save the session (%s); a crash will need a fresh nickname", exc)
