"""Where the client keeps its files (settings, identity key, pinned keys, session), the default
server port and downloads folder, and reading a typed server address.

Everything lives in the user's per-OS config directory (``platformdirs``): on Windows
``%APPDATA%\\OpenLChat`` (the roaming profile, so keys follow the user), on Linux
``$XDG_CONFIG_HOME/OpenLChat`` (``~/.config/OpenLChat``).
``OPENLCHAT_CONFIG_DIR`` overrides it, which tests use to keep each client apart.
Chat history lives in the per-OS *data* directory (``data_dir``; ``OPENLCHAT_DATA_DIR``
overrides it): on Windows ``%LOCALAPPDATA%\\OpenLChat``, on Linux ``~/.local/share/OpenLChat``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

from models.directory_wire import DEFAULT_PORT

log = logging.getLogger(__name__)

APP_NAME = "OpenLChat"


class BadServerAddress(ValueError):
    """A typed server address that cannot be used; the message is a sentence for a person."""


def parse_server(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); BadServerAddress otherwise."""
    text = text.strip()
    if not text:
        raise BadServerAddress("Please enter the server address, for example 192.168.1.10 or "
                               f"chat.example.org:{default_port}.")
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadServerAddress(f"“{text}” is not a valid address: a “]” is missing.")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise BadServerAddress(f"“{text}” is not a valid address; write IPv6 as [ADDR]:PORT.")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host or any(c.isspace() for c in host):
        raise BadServerAddress(f"“{text}” is not a valid server address.")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadServerAddress(f"“{port_text}” is not a port number (1–65535).")
    return host, int(port_text)


def format_address(address: tuple[str, int]) -> str:
    """``host:port``, IPv6 as ``[host]:port`` (what ``parse_server`` reads back)."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_downloads() -> Path:
    """Where received files go unless the user chose another folder."""
    return Path(platformdirs.user_downloads_dir()) / APP_NAME


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


def data_dir(override: Path | None = None, *, beside: Path | None = None) -> Path:
    """The directory for this user's chat history, created if missing (not roaming: it can
    grow large). ``beside``: an explicit config directory, used when neither ``override`` nor
    ``OPENLCHAT_DATA_DIR`` is given (clients run with their own config dir keep apart)."""
    if override is not None:
        path = Path(override)
    elif os.environ.get("OPENLCHAT_DATA_DIR"):
        path = Path(os.environ["OPENLCHAT_DATA_DIR"])
    elif beside is not None:
        path = Path(beside)
    else:
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
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


def log_path() -> Path:
    """The client's log file: the per-OS log directory (``%LOCALAPPDATA%\\OpenLChat\\Logs``,
    ``~/.local/state/OpenLChat/log``, ``~/Library/Logs/OpenLChat``)."""
    if os.environ.get("OPENLCHAT_LOG_DIR"):
        return Path(os.environ["OPENLCHAT_LOG_DIR"]) / "client.log"
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)) / "client.log"


def settings_path(override: Path | None = None) -> Path:
    return config_dir(override) / "settings.json"


def lan_default() -> bool:
    """LAN discovery (peers and servers on this network, LAN mode with no server): on unless
    $OPENLCHAT_NO_LAN is set (tests run many clients on one host and turn it on where meant)."""
    return not os.environ.get("OPENLCHAT_NO_LAN")
