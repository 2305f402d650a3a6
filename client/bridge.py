"""The bridge between callers (UI threads, the file layer) and the engine thread, both ways.

A caller hands the engine thread a function of ``now``: ``call`` waits for its result (or
exception), ``post`` does not wait and names what to run instead if the engine stops first
(every callback is answered), ``put`` neither waits nor answers. The engine thread runs the
queued functions in ``run_commands`` and, once it has stopped, answers the rest with
``EngineClosed`` in ``drop_queued``. The engine's events go the other way through ``Outbox``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from client.errors import EngineClosed, EngineNotResponding

log = logging.getLogger(__name__)

CALL_TIMEOUT = 5.0
CALL_SLICE = 0.05  # a caller re-checks that the engine thread still runs this often
MAX_COMMANDS_PER_TURN = 1000


class Call:
    """A command for the engine thread and, for the caller, its result."""

    __slots__ = ("fn", "done", "result", "error", "on_drop")

    def __init__(self, fn: Callable[[float], Any],
                 on_drop: Callable[[], None] | None = None) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # run instead of fn when the engine stops with the command still queued
        self.on_drop = on_drop


_NO_CALLS: list[Call] = []  # never appended to


class Bridge:
    """Commands into the engine thread. ``wake`` gets that thread out of its ``select``."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._commands: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.closed = False  # set by the engine's close(): no new calls or posts

    def on_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def call(self, fn: Callable[[float], Any], timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``fn(now)`` on the engine thread and return its result (or raise its error)."""
        thread = self.thread
        if thread is None:
            raise EngineClosed("engine not started")
        if threading.current_thread() is thread:
            return fn(time.monotonic())
        if self.closed or not thread.is_alive():
            raise EngineClosed("engine closed")
        call = Call(fn)
        self._commands.put(call)
        self._wake()
        end = time.monotonic() + timeout
        # short slices: a thread that stops after the is_alive() check above never answers
        while not call.done.wait(min(CALL_SLICE, max(0.0, end - time.monotonic()))):
            if not thread.is_alive():
                self.drop_queued()
            elif time.monotonic() >= end:
                raise EngineNotResponding("engine did not answer")
        if call.error is not None:
            raise call.error
        return call.result

    def post(self, go: Callable[[float], None], dropped: Callable[[], None]) -> None:
        """Run ``go`` on the engine thread without waiting; ``dropped()`` instead if the
        engine is not running or stops first (a callback is always answered)."""
        thread = self.thread
        if thread is None or self.closed or not thread.is_alive():
            dropped()
            return
        if threading.current_thread() is thread:
            go(time.monotonic())
            return
        self._commands.put(Call(go, on_drop=dropped))
        self._wake()
        if not thread.is_alive():  # it stopped after our check: nobody else drains
            self.drop_queued()

    def put(self, fn: Callable[[float], Any]) -> Call:
        """Queue ``fn`` without waiting for it (the caller checked the engine runs)."""
        call = Call(fn)
        self._commands.put(call)
        self._wake()
        return call

    def run_commands(self) -> list[Call]:
        """Run queued commands (engine thread); the caller sets their ``done`` once what they
        queued is sent."""
        if self._commands.empty():  # the usual case on a datagram wake-up; no exception
            return _NO_CALLS
        answered = []
        for _ in range(MAX_COMMANDS_PER_TURN):
            try:
                call = self._commands.get_nowait()
            except queue.Empty:
                break
            answered.append(call)
            try:
                call.result = call.fn(time.monotonic())
            except Exception as exc:
                call.error = exc
        return answered

    def drop_queued(self) -> None:
        """Answer every queued command with "engine closed" (never leave a caller waiting).
        Only once the engine thread has stopped: from it, or from a caller that saw it dead."""
        while True:
            try:
                call = self._commands.get_nowait()
            except queue.Empty:
                return
            call.error = EngineClosed("engine closed")
            if call.on_drop is not None:
                try:
                    call.on_drop()
                except Exception:
                    log.exception("dropping a queued command failed")
            call.done.set()


class Outbox:
    """The other way: events from the engine thread to a face, on ``queue``, with one
    ``notify()`` per engine turn however many events the turn produced."""

    def __init__(self, notify: Callable[[], None] | None) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self._notify = notify
        self._pending = False

    def put(self, event: object) -> None:
        """From the engine thread: delivered, the face is told at the end of the turn."""
        self.queue.put(event)
        self._pending = True

    def flush(self) -> None:
        """End of an engine turn."""
        if self._pending:
            self._pending = False
            self.notify()

    def post(self, event: object) -> None:
        """From any other thread: delivered and told at once."""
        self.queue.put(event)
        self.notify()

    def notify(self) -> None:
        if self._notify is not None:
            try:
                self._notify()
            except Exception:
                log.exception("notify callback failed")
