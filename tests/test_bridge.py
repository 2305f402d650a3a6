"""The caller <-> engine-thread bridge: results, errors, answers when the engine is gone."""

from __future__ import annotations

import threading

import pytest

from client.bridge import Bridge, Outbox
from client.errors import EngineClosed, EngineNotResponding


def serving(bridge: Bridge, stop: threading.Event) -> threading.Thread:
    """A stand-in engine thread: runs commands whenever woken, until ``stop``."""
    woken = threading.Event()
    bridge._wake = woken.set  # type: ignore[method-assign]

    def run() -> None:
        while not stop.is_set():
            if woken.wait(0.01):
                woken.clear()
                for call in bridge.run_commands():
                    call.done.set()
        bridge.drop_queued()

    bridge.thread = threading.Thread(target=run, daemon=True)
    bridge.thread.start()
    return bridge.thread


def test_not_started_or_closed_engines_refuse_and_answer_callbacks() -> None:
    bridge = Bridge(lambda: None)
    with pytest.raises(EngineClosed):
        bridge.call(lambda now: 1)
    dropped: list[bool] = []
    bridge.post(lambda now: None, lambda: dropped.append(True))
    assert dropped == [True]
    assert issubclass(EngineClosed, RuntimeError)  # what the faces caught before


def test_results_and_errors_come_back_to_the_caller() -> None:
    stop = threading.Event()
    bridge = Bridge(lambda: None)
    thread = serving(bridge, stop)
    try:
        assert bridge.call(lambda now: now > 0) is True
        with pytest.raises(ZeroDivisionError):
            bridge.call(lambda now: 1 / 0)
        got: list[float] = []
        done = threading.Event()
        bridge.post(lambda now: (got.append(now), done.set()), lambda: None)
        assert done.wait(5) and got
    finally:
        stop.set()
        thread.join(5)


def test_a_stuck_engine_thread_is_reported() -> None:
    stop = threading.Event()
    bridge = Bridge(lambda: None)
    thread = serving(bridge, stop)
    release = threading.Event()
    try:
        bridge.put(lambda now: release.wait(5))  # the thread is busy with this one
        with pytest.raises(EngineNotResponding):
            bridge.call(lambda now: 1, timeout=0.2)
    finally:
        release.set()
        stop.set()
        thread.join(5)


def test_commands_left_when_the_thread_stops_are_answered() -> None:
    bridge = Bridge(lambda: None)
    dropped: list[bool] = []
    call = bridge.put(lambda now: 1)
    bridge._commands.put(type(call)(lambda now: None, on_drop=lambda: dropped.append(True)))
    bridge.drop_queued()
    assert call.done.is_set() and isinstance(call.error, EngineClosed)
    assert dropped == [True]


def test_outbox_notifies_once_per_turn() -> None:
    told: list[int] = []
    box = Outbox(lambda: told.append(1))
    box.put("a")
    box.put("b")
    box.flush()
    box.flush()
    box.post("c")  # from another thread: told at once
    assert [box.queue.get_nowait() for _ in range(3)] == ["a", "b", "c"] and len(told) == 2
