"""The saved session: our keyword on disk, so a restart after a crash reclaims our nickname.

One small JSON file per configuration directory (``session.json``), written privately. It only
counts for the same server and the same nickname (compared in the directory's canonical form).
"""

from __future__ import annotations

import logging
from pathlib import Path

from client import config
from models.errors import ProtocolError
from models.nickname import canonical

log = logging.getLogger(__name__)

SESSION_FILE = "session.json"


def _same_nick(a: str, b: str) -> bool:
    try:
        return canonical(a) == canonical(b)
    except ProtocolError:
        return a == b


class SavedSession:
    """The session file for one server (``host:port``)."""

    def __init__(self, config_dir: Path | None, server: tuple[str, int]) -> None:
        self._config_dir = config_dir
        self._server = f"{server[0]}:{server[1]}"

    @property
    def path(self) -> Path:
        return config.config_dir(self._config_dir) / SESSION_FILE

    def load(self, nickname: str) -> str | None:
        """The keyword saved for ``nickname`` on this server, or None."""
        data = config.load_json(self.path)
        saved_nick = data.get("nickname")
        if data.get("server") == self._server and isinstance(saved_nick, str) and \
                _same_nick(saved_nick, nickname):
            kw = data.get("keyword")
            return kw if isinstance(kw, str) else None
        return None

    def save(self, nickname: str, keyword: str) -> None:
        """Remember ``keyword`` for ``nickname`` (as the user asked for it); never raises."""
        try:
            config.save_json(self.path, {"server": self._server, "nickname": nickname,
                                         "keyword": keyword}, private=True)
        except OSError as exc:
            log.warning("cannot save the session (%s); a crash will need a fresh nickname", exc)
