"""Helpers for the Tk tests (imported by tests/test_gui*.py), and checks of the helpers.

The Tk loop is driven with ``root.update()`` in a polling loop with a deadline, never
``mainloop()``. pytest-xvfb gives the session a virtual display when ``Xvfb`` exists.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.gui


def new_root() -> tk.Tk:
    """A shown, focused Tk root, or a skip with the reason when there is no display."""
    if not os.environ.get("DISPLAY") and not shutil.which("Xvfb") and os.name != "nt":
        pytest.skip("no display: DISPLAY is unset and Xvfb is not installed "
                    "(apt-get install xvfb; pytest-xvfb then starts it)")
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        pytest.skip(f"Tk cannot open a window here: {exc}")
    root.geometry("900x600+0+0")
    root.deiconify()
    root.update()
    root.focus_force()
    root.update()
    return root


def shown_root() -> Iterator[tk.Tk]:
    """Body of the ``root`` fixture each GUI test module declares (``yield from``)."""
    r = new_root()
    yield r
    with contextlib.suppress(tk.TclError):   # the app may have destroyed it already
        r.destroy()
    gc.collect()   # free dead widgets' Tk variables here, not later in some engine thread


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


def pump(root: tk.Misc, until: Callable[[], Any], timeout: float = 5.0,
         what: str = "condition") -> Any:
    """Run the Tk loop until ``until()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        root.update()
        value = until()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def run_for(root: tk.Misc, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.01)


_KEYSYMS = {" ": "space", "!": "exclam", ",": "comma", ".": "period", "?": "question",
            "-": "minus", "'": "apostrophe", ":": "colon"}


def type_text(widget: tk.Misc, text: str) -> None:
    """Type ASCII ``text`` into the focused ``widget`` with synthetic key events."""
    widget.focus_force()
    widget.update()
    for ch in text:
        widget.event_generate("<KeyPress>", keysym=_KEYSYMS.get(ch, ch))
    widget.update()


def press(widget: tk.Misc, sequence: str) -> None:
    widget.focus_force()
    widget.update()
    widget.event_generate(sequence)
    widget.update()


class TkThreadRecorder:
    """Stands in for ``root.tk`` and records the thread of every call into Tcl/Tk.

    Every widget copies ``master.tk`` when created, so swapping it on a fresh root before the
    app builds anything catches every Tk call the app makes, from whichever thread.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls = 0
        self.off_main: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            current = threading.current_thread()
            if current is not threading.main_thread():
                self.off_main.append((current.name, f"{name}{args[:3]!r}"))
            return attr(*args, **kwargs)
        return recorded


def test_recorder_catches_a_call_from_another_thread(root: tk.Tk) -> None:
    recorder = TkThreadRecorder(root.tk)
    root.tk = recorder  # type: ignore[assignment]
    label = tk.Label(root, text="x")
    label.pack()
    root.update()
    assert recorder.calls > 0 and recorder.off_main == []

    def intrude() -> None:
        with contextlib.suppress(RuntimeError, tk.TclError):  # "main thread is not in main loop"
            recorder.getvar("tk_version")

    worker = threading.Thread(target=intrude, name="intruder")
    worker.start()
    worker.join()
    assert recorder.off_main and recorder.off_main[0][0] == "intruder"


def test_type_text_reaches_a_focused_entry(root: tk.Tk) -> None:
    text = tk.Text(root)
    text.pack()
    type_text(text, "hi there, ok?")
    assert text.get("1.0", "end-1c") == "hi there, ok?"
