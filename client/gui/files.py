"""File transfers in the window: offers to accept or decline, progress bars, cancel buttons.

The panel sits above the status bar and is hidden while empty. ``progress_text`` is
pure (tested without a display).
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from client.gui.chat import printable
from client.wording import human_size

log = logging.getLogger(__name__)

MAX_ROWS = 32   # offers/transfers shown at once; a flood of offers beyond this is declined
MAX_FINISHED = 4096   # finished ids remembered, to ignore their late progress events


def progress_text(done: int, total: int, bytes_per_s: float) -> str:
    """``3.1 MiB of 10.0 MiB · 1.2 MiB/s · 6 s left``."""
    parts = [f"{human_size(done)} of {human_size(total)}"]
    if bytes_per_s > 0 and done < total:    # finished: no "0 s left"
        parts.append(f"{human_size(bytes_per_s)}/s")
        left = max(0, total - done) / bytes_per_s
        if left >= 3600:
            parts.append(f"{left / 3600:.1f} h left")
        elif left >= 60:
            parts.append(f"{int(left // 60)} min {int(left % 60)} s left")
        else:
            parts.append(f"{int(left + 0.5)} s left")
    return " · ".join(parts)


class _Row:
    def __init__(self, frame: ttk.Frame, label: tk.StringVar,
                 bar: ttk.Progressbar | None) -> None:
        self.frame, self.label, self.bar = frame, label, bar


class FilesPanel(ttk.Frame):
    """One row per offer or running transfer."""

    def __init__(self, master: tk.Misc, *, on_accept: Callable[[int], None],
                 on_decline: Callable[[int], None], on_cancel: Callable[[int], None],
                 on_change: Callable[[bool], None]) -> None:
        super().__init__(master, padding=(0, 4))
        self._accept, self._decline, self._cancel = on_accept, on_decline, on_cancel
        self._on_change = on_change     # True when the panel has rows (show it), False when empty
        self.rows: dict[int, _Row] = {}
        self._finished: dict[int, None] = {}    # recent finished ids, oldest first (bounded)
        self.columnconfigure(0, weight=1)

    def _new_row(self, transfer_id: int, text: str) -> tuple[ttk.Frame, tk.StringVar]:
        frame = ttk.Frame(self, padding=(0, 2))
        frame.grid(row=transfer_id % 100000, column=0, sticky="ew")
        frame.columnconfigure(0, weight=1)
        var = tk.StringVar(frame, value=text)
        ttk.Label(frame, textvariable=var).grid(row=0, column=0, sticky="w")
        return frame, var

    def offer(self, transfer_id: int, sender: str, name: str, size: int) -> bool:
        """Show an offer with Accept/Decline; False (and declined) if too many are open."""
        if transfer_id in self.rows:
            return True
        if len(self.rows) >= MAX_ROWS:
            log.warning("too many file offers open; declining %r from %s", name, sender)
            self._decline(transfer_id)
            return False
        frame, var = self._new_row(transfer_id,
                                   f"{sender} offers “{printable(name)}” ({human_size(size)})")
        ttk.Button(frame, text="Accept", style="Accent.TButton",
                   command=lambda: self._answer(transfer_id, True)).grid(
            row=0, column=1, padx=(6, 0))
        ttk.Button(frame, text="Decline", command=lambda: self._answer(transfer_id, False)).grid(
            row=0, column=2, padx=(6, 0))
        self.rows[transfer_id] = _Row(frame, var, None)
        self._on_change(True)
        return True

    def waiting(self, transfer_id: int, peer: str, name: str) -> None:
        """An offer we sent, not answered yet: a row with Cancel."""
        if transfer_id in self.rows or len(self.rows) >= MAX_ROWS:
            return
        frame, var = self._new_row(transfer_id,
                                   f"→ {peer}  “{printable(name)}” — waiting for an answer…")
        ttk.Button(frame, text="Cancel", command=lambda: self._cancel_clicked(transfer_id)).grid(
            row=0, column=2, padx=(6, 0))
        self.rows[transfer_id] = _Row(frame, var, None)
        self._on_change(True)

    def _answer(self, transfer_id: int, accept: bool) -> None:
        row = self.rows.get(transfer_id)
        if row is None:
            return
        if accept:
            self._accept(transfer_id)
            for child in row.frame.grid_slaves(row=0):
                if isinstance(child, ttk.Button):
                    child.destroy()
            row.label.set(row.label.get() + " — waiting…")
        else:
            self._decline(transfer_id)
            self.finish(transfer_id)

    def progress(self, transfer_id: int, peer: str, name: str, done: int, total: int,
                 bytes_per_s: float, outgoing: bool) -> None:
        row = self.rows.get(transfer_id)
        if row is None:
            if len(self.rows) >= MAX_ROWS or transfer_id in self._finished:
                return      # a late progress event must not bring a finished row back
            frame, var = self._new_row(transfer_id, "")
            row = _Row(frame, var, None)
            self.rows[transfer_id] = row
            self._on_change(True)
        if row.bar is None:
            for child in row.frame.grid_slaves(row=0):
                if isinstance(child, ttk.Button):
                    child.destroy()
            row.bar = ttk.Progressbar(row.frame, mode="determinate", length=180, maximum=1.0)
            row.bar.grid(row=0, column=1, padx=(6, 0))
            ttk.Button(row.frame, text="Cancel",
                       command=lambda: self._cancel_clicked(transfer_id)).grid(
                row=0, column=2, padx=(6, 0))
        arrow = f"→ {peer}" if outgoing else f"← {peer}"
        row.label.set(f"{arrow}  “{printable(name)}”  {progress_text(done, total, bytes_per_s)}")
        row.bar.configure(value=(done / total) if total > 0 else 1.0)

    def _cancel_clicked(self, transfer_id: int) -> None:
        self._cancel(transfer_id)
        self.finish(transfer_id)

    def finish(self, transfer_id: int) -> None:
        self._finished[transfer_id] = None
        if len(self._finished) > MAX_FINISHED:
            del self._finished[next(iter(self._finished))]
        row = self.rows.pop(transfer_id, None)
        if row is not None:
            row.frame.destroy()
        if not self.rows:
            self._on_change(False)
