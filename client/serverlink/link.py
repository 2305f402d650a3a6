"""The server channel wired to the world: its datagrams go to the server's address, its requests
to register again run in a worker thread (TCP blocks), and their outcome comes back to the
engine thread as a command. Everything else the channel says goes to the engine's ``handle``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from client.errors import RegistrationError, ServerUnreachable
from client.serverlink.channel import ChannelEvent, Enrollment, RegisterAgain, ServerChannel
from client.serverlink.registration import register
from models import directory_wire as wire

log = logging.getLogger(__name__)

Address = tuple[str, int]


class ServerLink:
    def __init__(self, channel: ServerChannel, server: Address, *,
                 send: Callable[[bytes, Address], None],
                 put: Callable[[Callable[[float], None]], object],
                 stopping: Callable[[], bool],
                 handle: Callable[[ChannelEvent, float], None]) -> None:
        self.channel = channel
        self.server = server
        self._send = send  # the UDP edge
        self._put = put  # run on the engine thread
        self._stopping = stopping  # no point in handing a result back any more
        self._handle = handle

    def on_datagram(self, data: bytes, now: float) -> str | None:
        """A datagram from the server's address; why it was dropped, or None."""
        why = self.channel.on_datagram(data, now)
        if why is None:
            self.flush(now)
        return why

    def on_timer(self, now: float) -> None:
        self.channel.on_timer(now)
        self.flush(now)

    def quit(self) -> None:
        self.channel.quit()
        self._send_outgoing()

    def flush(self, now: float) -> None:
        """Carry out what the channel asks for, in its order."""
        self._send_outgoing()
        for event in self.channel.take_events():
            if isinstance(event, RegisterAgain):
                self._register_in_background(event)
            else:
                self._handle(event, now)

    def _send_outgoing(self) -> None:
        for data in self.channel.take_outgoing():
            self._send(data, self.server)

    def _register_in_background(self, request: RegisterAgain) -> None:
        server = self.server

        def work() -> None:
            agreed: list[wire.Keyword] = []  # the KEYWORD, even if the exchange fails later
            try:
                result: Enrollment | Exception = register(
                    server, request.nickname, keyword=request.keyword, timeout=request.timeout,
                    offer=request.offer, on_keyword=agreed.append)
            except (RegistrationError, ServerUnreachable) as exc:
                result = exc
            except Exception as exc:  # never let a worker die silently
                log.exception("registration worker failed")
                result = exc
            if not self._stopping():
                self._put(lambda now: self._registered(request, result, now,
                                                       agreed[0] if agreed else None))

        threading.Thread(target=work, name=f"register-{request.reason}", daemon=True).start()

    def _registered(self, request: RegisterAgain, result: Enrollment | Exception,
                    now: float, agreed: wire.Keyword | None) -> None:
        self.channel.on_registered(request, result, now, agreed)
        self.flush(now)
