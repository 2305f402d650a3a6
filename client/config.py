"""Where the client keeps its files: settings, identity key, pinned keys, session.

Everything lives in the user's per-OS config directory (``platformdirs``): on Windows
``%APPDATA%\\OpenLChat`` (the roaming profile, so keys follow the user), on Linux
``$XDG_CONFIG_HOME/OpenLChat`` (``~/.config/OpenLChat``).
``OPENLCHAT_CONFIG_DIR`` overrides it, which tests use to keep each client apart.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

log = logging.getLogger(__name__)

APP_NAME = "OpenLChat"


def config_dir(override: Path | None = None) -> Path:
    """The directory for this user's client files, created if missing."""
    if override is not None:
        path = Path(override)
    elif os.environ.get("OPENLCHAT_CONFIG_DIR"):
        path = Path(os.environ["OPENLCHAT_CONFIG_DIR"])
    else:
        path = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, roaming=True))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never half.

    ``private`` makes the file readable by the owner only (a no-op for ACLs on Windows,
    where the per-user profile directory is already private).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if private:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; an empty dict when missing or unreadable (logged once)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def save_json(path: Path, data: dict[str, Any], *, private: bool = False) -> None:
    write_atomically(path, json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"),
                     private=private)


def settings_path(override: Path | None = None) -> Path:
    return config_dir(override) / "settings.json"
