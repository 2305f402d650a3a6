"""``python -m client``: the OpenLChat client.

``python -m client --headless --server HOST[:PORT] --nick NICK`` runs the terminal client
(client/terminal.py); without ``--headless`` it opens the Tk window (client/gui.py, imported only
then, so the terminal client never needs tkinter).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

DEFAULT_PORT = 7700


def parse_server(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"bad address {text!r}; IPv6 as [ADDR]:PORT")
        port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise argparse.ArgumentTypeError(f"no host in {text!r}")
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m client", description="OpenLChat client.")
    p.add_argument("--server", type=parse_server, default=None, metavar="HOST[:PORT]",
                   help=f"directory server (port defaults to {DEFAULT_PORT})")
    p.add_argument("--nick", default=None, help="your nickname (1-24 characters, no spaces)")
    p.add_argument("--config-dir", type=Path, default=None,
                   help="where the identity key, pins and session live "
                        "(default: the per-user config directory, or $OPENLCHAT_CONFIG_DIR)")
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
    p.add_argument("--deadline", type=float, default=10.0,
                   help="seconds before an unacknowledged message is reported "
                        "not delivered (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log more to stderr (-v info, -vv debug)")
    return p


def run_headless(args: argparse.Namespace, stdin: TextIO, stdout: TextIO,
                 stderr: TextIO) -> int:
    from client.engine import Engine, RegistrationError, ServerUnreachable
    from client.terminal import Terminal

    try:
        engine = Engine(args.server, args.nick, config_dir=args.config_dir,
                        bind=(args.bind, args.port), deadline=args.deadline)
    except OSError as exc:
        print(f"error: cannot open a UDP socket on {args.bind}:{args.port}: {exc}", file=stderr)
        return 1
    try:
        engine.start()
    except KeyboardInterrupt:
        engine.close()
        return 130
    except RegistrationError as exc:
        engine.close()
        print(f"error: the server refused {args.nick!r}: {exc.code} {exc.text}", file=stderr)
        return 1
    except ServerUnreachable as exc:
        engine.close()
        print(f"error: server unreachable: {exc.text}", file=stderr)
        return 1
    except Exception as exc:  # e.g. an unreadable identity key
        engine.close()
        print(f"error: cannot start: {exc}", file=stderr)
        return 1
    if not args.no_files:
        try:
            engine.attach_files(args.downloads or default_downloads())
        except Exception as exc:  # chat works without files
            logging.getLogger("client").warning("file transfer unavailable: %s", exc)
    return Terminal(engine, stdin, stdout).run()


def default_downloads() -> Path:
    import platformdirs

    return Path(platformdirs.user_downloads_dir()) / "OpenLChat"


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, stream=stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.headless:
        if args.server is None or args.nick is None:
            parser.error("--headless needs --server and --nick")
        return run_headless(args, stdin, stdout, stderr)
    from client import gui  # tkinter only here

    return int(gui.main(server=args.server, nick=args.nick, config_dir=args.config_dir) or 0)


if __name__ == "__main__":
    if hasattr(sys.stdout, "reconfigure"):
        # Cyrillic and emoji must pass whatever the console's code page is.
        for stream in (sys.stdin, sys.stdout, sys.stderr):
            stream.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    sys.exit(main())
