"""Builds a running client for either face: the engine, started, with file transfer plugged in.

Both faces call ``open_client``; ports, the downloads folder and how file transfer is plugged
into the engine are decided here only. It blocks (registration over TCP): the Tk face calls it
from a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from client import errors
from client.config import format_address
from client.engine import Engine
from client.files import FileTransfers
from client.reach.discovery import DEFAULT_PORT as DISCOVERY_PORT
from client.reach.paths import PathConfig
from client.reachlink import ReachConfig

log = logging.getLogger(__name__)

# (server, nickname, **options) -> an engine not started yet; tests pass stand-ins
EngineFactory = Callable[..., Engine]


class CannotOpenSocket(errors.ClientError):
    """The local UDP socket could not be opened (address in use, no such interface)."""

    def __init__(self, bind: tuple[str, int], reason: OSError) -> None:
        super().__init__(f"cannot open a UDP socket on {format_address(bind)}: {reason}")
        self.bind = bind


class Client(NamedTuple):
    """A started engine and its file-transfer manager (None: chat only)."""
    engine: Engine
    transfers: FileTransfers | None


def plug_in_files(engine: Engine, downloads: Path) -> FileTransfers | None:
    """Give a started engine its file-transfer manager; None (logged once) if it cannot have
    one. Its TCP listener takes the engine's UDP port number when free (client/files/)."""
    try:
        return engine.attach_files(downloads)
    except (errors.ClientError, RuntimeError, OSError) as exc:  # chat works without files
        log.warning("file transfer unavailable: %s", exc)
        return None


def open_client(server: tuple[str, int] | None, nick: str, *, config_dir: Path | None = None,
                data_dir: Path | None = None,
                downloads: Path | None = None, bind: tuple[str, int] | None = None,
                deadline: float | None = None, timeout: float = 5.0,
                make_engine: EngineFactory = Engine, lan: bool = False,
                lan_port: int | None = None, punch: bool = True,
                keepalive: float | None = None, chat: bool = True,
                files_path: str = "auto") -> Client:
    """Create the engine, register with the server (blocks up to ``timeout``), plug in file
    transfer saving to ``downloads`` (None: no file transfer). ``lan``: LAN discovery, and
    LAN mode when no server is named or reachable (client/seeker.py). ``files_path``: "auto",
    "udp" or "tcp" (``client.files.state.Settings.udp``).

    Raises what the engine raises (the client.errors classes; wording.describe_error says them
    in plain words) or ``CannotOpenSocket``; a half-made engine is closed first.
    """
    options: dict[str, Any] = {"config_dir": config_dir}
    if data_dir is not None:
        options["data_dir"] = data_dir
    if bind is not None:
        options["bind"] = bind
    if deadline is not None:
        options["deadline"] = deadline
    if not chat:
        options["chat"] = False
    if lan or not punch or keepalive is not None:
        paths = PathConfig() if keepalive is None else PathConfig(keepalive_interval=keepalive)
        options["reach"] = ReachConfig(paths=paths, lan=lan, punch_at_join=punch,
                                       lan_port=lan_port or DISCOVERY_PORT)
    try:
        engine = make_engine(server, nick, **options)
    except OSError as exc:
        raise CannotOpenSocket(bind or ("0.0.0.0", 0), exc) from exc
    try:
        engine.start(timeout=timeout)
    except BaseException:
        close_quietly(engine)
        raise
    transfers = plug_in_files(engine, downloads) if downloads is not None else None
    if transfers is not None and files_path != "auto":   # "auto" is the manager's default
        transfers.settings.udp = files_path
    return Client(engine, transfers)


def close_quietly(engine: Engine) -> None:
    """QUIT and stop; a failure is logged, never raised (we are leaving anyway)."""
    try:
        engine.close()
    except Exception as exc:
        log.warning("closing the engine failed: %r", exc)
