"""Connecting, cancelling, disconnecting and changing server or nickname (a mixin of ``App``).

Connecting runs ``wiring.open_client`` in a short worker thread (registration blocks on TCP).
Each attempt has a number; Cancel (or Escape) moves the number on under ``_lock``, so a worker
that finishes later sees it was abandoned and closes its engine itself, never touching Tk.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from client import events as ev
from client import wiring
from client.config import format_address, lan_default, parse_server
from client.gui.base import Outcome, Window
from client.wording import check_nickname, describe_error

log = logging.getLogger(__name__)


CLOSE_WAIT = 5.0  # seconds a new connection waits for the previous one to leave


class SessionHandlers(Window):
    """One connection at a time, and the ways out of it."""

    _factory: wiring.EngineFactory | None
    _connect_timeout: float
    config_dir: Path | None
    _lock: threading.Lock
    _closing: bool
    _attempt: int
    _closers: list[threading.Thread]

    # --- connecting ----------------------------------------------------------------------------
    def connect(self, server_text: str, nick_text: str) -> None:
        try:  # an empty server field with LAN discovery on: find one, else LAN mode
            server = parse_server(server_text) if server_text.strip() or not lan_default() \
                else None
            nick = check_nickname(nick_text)
        except ValueError as exc:
            self.connect_frame.show_error(str(exc))
            return
        label = format_address(server) if server is not None else "this network"
        self.connect_frame.set_busy(True, f"Connecting to {label}…")
        self.settings.update(server=server_text.strip(), nick=nick)
        with self._lock:
            self._attempt += 1
            attempt = self._attempt
        threading.Thread(target=self._connect_worker, args=(server, nick, label, attempt),
                         name="gui-connect", daemon=True).start()

    def _connect_worker(self, server: tuple[str, int] | None, nick: str, label: str,
                        attempt: int) -> None:
        # runs off the main thread: no Tk here, only the results queue
        self._wait_for_closers()   # our own QUIT first, or the server still holds our nickname
        options: dict[str, Any] = {} if self._factory is None else {"make_engine": self._factory}
        try:
            client = wiring.open_client(server, nick, config_dir=self.config_dir,
                                        downloads=self.downloads,
                                        timeout=self._connect_timeout, lan=lan_default(),
                                        **options)
        except Exception as exc:
            log.info("connecting to %s as %s failed: %r", label, nick, exc)
            with self._lock:
                if attempt == self._attempt:
                    self._results.put((Outcome.FAILED, describe_error(exc, nick, label)))
            return
        with self._lock:
            abandoned = self._closing or attempt != self._attempt
            if not abandoned:
                self._results.put((Outcome.CONNECTED, client))
        if abandoned:   # the window closed, or Cancel, while we were connecting
            wiring.close_quietly(client.engine)

    def connecting(self) -> bool:
        return self.main_frame is None and self.connect_frame.busy

    def cancel_connect(self) -> None:
        """Cancel (or Escape) while connecting: back to the form; a late engine is closed."""
        if not self.connecting():
            return
        late: list[wiring.Client] = []
        with self._lock:
            self._attempt += 1
            kept = []
            for kind, value in self._take_results():
                if kind is Outcome.CONNECTED:
                    late.append(value)
                elif kind is Outcome.CALL:
                    kept.append((kind, value))
            for item in kept:
                self._results.put(item)
        for client in late:
            self._close_in_background(client.engine)
        self.connect_frame.set_busy(False)
        self.connect_frame.error_var.set("Cancelled.")
        self.connect_frame.focus_first()

    # --- leaving a server ----------------------------------------------------------------------
    def disconnect(self, message: str = "Disconnected.", *, focus_nick: bool = False) -> None:
        """Leave the server (QUIT off the Tk thread) and show the connect form again."""
        engine, self.engine, self.transfers = self.engine, None, None
        if engine is not None:
            self._close_in_background(engine)
        self._teardown_main()
        self.nickname = None
        self.server_online = True
        self.title_unread = 0
        self._update_title()
        self.connect_frame.pack(fill="both", expand=True)
        self.connect_frame.show_error(message)
        self.connect_frame.set_error_colour(False)
        if focus_nick:
            self.connect_frame.nick_entry.focus_set()
            self.connect_frame.nick_entry.select_range(0, "end")

    def change_server_or_nick(self) -> None:
        """Menu "Change server or nickname…": leave, with the form ready for new values."""
        self.disconnect("Type another server or nickname, then Connect.", focus_nick=True)

    def _on_fatal(self, e: ev.Fatal) -> None:
        log.error("engine stopped: %s", e.text)
        self.disconnect(f"Disconnected: {e.text}")
        self.connect_frame.set_error_colour(True)

    def _close_in_background(self, engine: Any) -> None:
        closer = threading.Thread(target=wiring.close_quietly, args=(engine,), name="gui-quit",
                                  daemon=True)
        with self._lock:
            self._closers = [t for t in self._closers if t.is_alive()] + [closer]
        closer.start()

    def _wait_for_closers(self, timeout: float = CLOSE_WAIT) -> None:
        """Reconnecting right after Disconnect: let the old engine QUIT and release its saved
        session first (a worker thread waits here, never the Tk thread)."""
        with self._lock:
            closers = list(self._closers)
        deadline = time.monotonic() + timeout
        for closer in closers:
            closer.join(max(0.0, deadline - time.monotonic()))
