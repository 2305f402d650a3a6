"""The file-transfer panel in the window (needs a display; pytest-xvfb gives one)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Iterator

import pytest

from client.gui.files import MAX_FINISHED, FilesPanel
from tests.test_gui_support import shown_root

pytestmark = pytest.mark.gui


@pytest.fixture
def root() -> Iterator[tk.Tk]:
    yield from shown_root()


def test_late_progress_does_not_bring_a_finished_row_back(root: tk.Tk) -> None:
    shown: list[bool] = []
    panel = FilesPanel(root, on_accept=lambda i: None, on_decline=lambda i: None,
                       on_cancel=lambda i: None, on_change=shown.append)
    panel.progress(5, "bob", "a.bin", 10, 100, 0.0, False)
    assert 5 in panel.rows and shown == [True]
    panel.finish(5)
    panel.progress(5, "bob", "a.bin", 20, 100, 0.0, False)     # arrived after FileDone
    assert panel.rows == {} and shown == [True, False]
    panel.progress(6, "bob", "b.bin", 1, 100, 0.0, False)      # another transfer still shows
    assert 6 in panel.rows


def test_finished_ids_are_bounded(root: tk.Tk) -> None:
    panel = FilesPanel(root, on_accept=lambda i: None, on_decline=lambda i: None,
                       on_cancel=lambda i: None, on_change=lambda shown: None)
    for i in range(MAX_FINISHED + 10):
        panel.finish(i)
    assert len(panel._finished) == MAX_FINISHED
    panel.progress(0, "bob", "old.bin", 1, 2, 0.0, True)      # forgotten: shown again
    assert 0 in panel.rows
