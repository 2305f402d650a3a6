"""``python -m client --irc [HOST:]PORT``: the engine without a window, served to an IRC client.

Start-up is the terminal's (``client.wiring.open_client``, the same error lines); then the
gateway listens until Ctrl-C (or SIGTERM), and the engine leaves the directory on the way out.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from typing import TextIO

from client.config import format_address
from client.irc.server import GatewayError, IrcGateway, is_loopback
from client.wiring import Client, close_quietly


def run_gateway(args: argparse.Namespace, open_client: Callable[[], Client | int],
                stdout: TextIO, stderr: TextIO) -> int:
    """``open_client``: the started client, or the exit code after it said why not."""
    if not is_loopback(args.irc[0]) and not args.irc_password:
        print(f"error: serving IRC on {args.irc[0]} (not this machine only) needs "
              "--irc-password", file=stderr)
        return 1
    client = open_client()
    if isinstance(client, int):
        return client
    engine = client.engine
    try:
        gateway = IrcGateway(engine.chat, engine.events, args.irc, password=args.irc_password)
        gateway.start()
    except GatewayError as exc:
        print(f"error: {exc}", file=stderr)
        close_quietly(engine)
        return 1
    if threading.current_thread() is threading.main_thread():
        # SIGTERM leaves like Ctrl-C: the engine says QUIT to the directory
        signal.signal(signal.SIGTERM, lambda *_: gateway.close())
    print(f"IRC gateway for {engine.nickname} listening on {format_address(gateway.address)}",
          file=stdout, flush=True)
    try:
        gateway.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.close()
        close_quietly(engine)
    return 0
