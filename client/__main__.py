"""``python -m client``: the OpenLChat client.

``python -m client --headless [--server HOST[:PORT]] --nick NICK`` runs the terminal client
(with no ``--server``: the first server heard on this network, else LAN mode)
(client/terminal.py); without ``--headless`` it opens the Tk window (client/gui/, imported only
then, so the terminal client never needs tkinter).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from client.config import (
    DEFAULT_PORT,
    BadServerAddress,
    default_downloads,
    format_address,
    lan_default,
    log_path,
    parse_server,
)
from client.locks import Held, hold
from client.reach.discovery import DEFAULT_PORT as DISCOVERY_PORT
from models.nickname import MAX_NICK_LEN

if TYPE_CHECKING:
    from client.wiring import Client


def server_argument(text: str) -> tuple[str, int]:
    """argparse's ``type`` for ``--server``: config.parse_server, its sentence as the error."""
    try:
        return parse_server(text)
    except BadServerAddress as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def irc_argument(text: str) -> tuple[str, int]:
    from client.irc.server import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from client.terminal import command_list

    p = argparse.ArgumentParser(
        prog="python -m client", description="OpenLChat client.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands in the terminal client (--headless):\n" + command_list() +
               f"\n\nLog records go to {log_path()} (with -v: to the terminal's stderr).")
    p.add_argument("--server", type=server_argument, default=None, metavar="HOST[:PORT]",
                   help=f"directory server (port defaults to {DEFAULT_PORT})")
    p.add_argument("--nick", default=None,
                   help=f"your nickname (1-{MAX_NICK_LEN} characters, no spaces)")
    p.add_argument("--config-dir", type=Path, default=None,
                   help="where the identity key, pins and session live "
                        "(default: the per-user config directory, or $OPENLCHAT_CONFIG_DIR)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where chat history lives (default: $OPENLCHAT_DATA_DIR, else the "
                        "--config-dir if given, else the per-user data directory)")
    p.add_argument("--headless", action="store_true",
                   help="terminal client on stdin/stdout instead of the window")
    p.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                   help="local address of the UDP socket (default: %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="local UDP port (default: %(default)s = any free port)")
    p.add_argument("--downloads", type=Path, default=None, metavar="DIR",
                   help="where received files are saved (default: the user's Downloads "
                        "folder, OpenLChat subfolder)")
    p.add_argument("--no-files", action="store_true",
                   help="terminal client: do not offer or accept file transfers")
    p.add_argument("--files-path", choices=("auto", "udp", "tcp"), default="auto",
                   help="how files travel: auto = direct TCP, over the peers' UDP path when "
                        "TCP fails both ways; udp = the UDP path at once; tcp = never UDP "
                        "(default: %(default)s)")
    p.add_argument("--deadline", type=float, default=10.0,
                   help="seconds before an unacknowledged message is reported "
                        "not delivered (default: %(default)s)")
    p.add_argument("--lan", action=argparse.BooleanOptionalAction, default=None,
                   help="find peers and servers on this network; with no server, chat with "
                        "the peers here (default: on, unless $OPENLCHAT_NO_LAN is set)")
    p.add_argument("--keepalive", type=float, default=None, metavar="SECONDS",
                   help="behind NAT, keep the way to the people we talk with open this often "
                        "(default: 25, below common router timeouts)")
    p.add_argument("--lan-port", type=int, default=DISCOVERY_PORT, help=argparse.SUPPRESS)
    # tests: no handshake at join (to watch one start on demand)
    p.add_argument("--no-punch", action="store_true", help=argparse.SUPPRESS)
    # tests: no chat layer (its channel state goes to every peer met, which starts a session)
    p.add_argument("--no-chat", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--irc", type=irc_argument, nargs="?", const=("127.0.0.1", 6667),
                   default=None, metavar="[HOST:]PORT",
                   help="no window: serve IRC for your own IRC client (irssi, WeeChat, "
                        "HexChat) on this address (default 127.0.0.1:6667)")
    p.add_argument("--irc-password", default=None, metavar="PASSWORD",
                   help="the IRC client's PASS; needed to serve IRC beyond 127.0.0.1")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log to stderr instead of the log file (-v info, -vv debug)")
    return p


def lan_wanted(args: argparse.Namespace) -> bool:
    """LAN discovery: on unless turned off (tests run many clients on one host: they set
    OPENLCHAT_NO_LAN, and turn it on with --lan where they mean it)."""
    if args.lan is not None:
        return bool(args.lan)
    return lan_default()


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_handler: logging.Handler | None = None
_log_lock: Held | None = None  # this process writes the shared client.log while it holds this
STALE_LOG_AGE = 7 * 86400.0  # seconds: a further client's own log file is removed after this


def _log_file_handler(path: Path) -> tuple[logging.Handler, Path]:
    """The shared, rotating ``client.log`` for the first client of this user; a file of its own
    for each further one (two windows, two users of one terminal server). Rotation renames the
    file, which fails on Windows while another process holds it open, and ``logging`` would then
    print a traceback into the chat's console on every record."""
    global _log_lock
    if _log_lock is not None:  # main() run again (tests): let go of the previous file's lock
        _log_lock.release()
        _log_lock = None
    path.parent.mkdir(parents=True, exist_ok=True)
    held = hold(path)
    if held is not None:
        _log_lock = held
        return logging.handlers.RotatingFileHandler(
            path, maxBytes=1_000_000, backupCount=2, encoding="utf-8"), path
    own = path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")
    for old in path.parent.glob(f"{path.stem}-*{path.suffix}"):
        if old != own and time.time() - old.stat().st_mtime > STALE_LOG_AGE:
            with contextlib.suppress(OSError):
                old.unlink()
    return logging.FileHandler(own, mode="w", encoding="utf-8"), own


def setup_logging(verbose: int, stderr: TextIO) -> Path | None:
    """Log records never mix with the chat on stdout: ``-v`` sends them to ``stderr``, else
    (INFO and up) to the log file, returned. A log file that cannot be opened: no log."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:     # main() run again (tests): replace only what we added
        root.removeHandler(_handler)
        _handler.close()
    if verbose:
        handler: logging.Handler = logging.StreamHandler(stderr)
        root.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
        path = None
    else:
        path = log_path()
        try:
            handler, path = _log_file_handler(path)
        except OSError:
            handler, path = logging.NullHandler(), None
        root.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    _handler = handler
    return path


def open_windowless(args: argparse.Namespace, stderr: TextIO) -> Client | int:
    """The started client for the terminal or IRC face, or the exit code after a one-line
    error on ``stderr``."""
    from client import wiring, wording

    downloads = None if args.no_files else (args.downloads or default_downloads())
    try:
        return wiring.open_client(args.server, args.nick, config_dir=args.config_dir,
                                  data_dir=args.data_dir,
                                  downloads=downloads, bind=(args.bind, args.port),
                                  deadline=args.deadline, lan=lan_wanted(args),
                                  lan_port=args.lan_port, punch=not args.no_punch,
                                  keepalive=args.keepalive, chat=not args.no_chat,
                                  files_path=args.files_path)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # refused, unreachable, damaged identity key, socket in use...
        where = format_address(args.server) if args.server else "(none found)"
        line = wording.error_line(exc, args.nick, where)
        print(f"error: {line}", file=stderr)
        return 1


def run_headless(args: argparse.Namespace, stdin: TextIO, stdout: TextIO,
                 stderr: TextIO) -> int:
    from client.terminal import Terminal

    client = open_windowless(args, stderr)
    if isinstance(client, int):
        return client
    return Terminal(client.engine, stdin, stdout).run()


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, stderr)
    if args.irc is not None:
        if args.nick is None or (args.server is None and not lan_wanted(args)):
            parser.error("--irc needs --nick, and --server unless LAN discovery is on")
        from client.irc.face import run_gateway

        return run_gateway(args, lambda: open_windowless(args, stderr), stdout, stderr)
    if args.headless:
        if args.nick is None or (args.server is None and not lan_wanted(args)):
            parser.error("--headless needs --nick, and --server unless LAN discovery is on")
        return run_headless(args, stdin, stdout, stderr)
    from client import gui  # tkinter only here

    return int(gui.main(server=args.server, nick=args.nick, config_dir=args.config_dir) or 0)


if __name__ == "__main__":
    # Cyrillic and emoji must pass whatever the console's code page is.
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):  # not when replaced (pythonw: None)
            stream.reconfigure(encoding="utf-8", errors="replace")
    sys.exit(main())
