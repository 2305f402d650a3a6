"""Files in the window: offering, answering offers, progress, the downloads folder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog

from client import events as ev
from client.gui.base import EventHandlers, Window
from client.wording import human_size

log = logging.getLogger(__name__)


class FileHandlers(Window):
    """File transfer (a mixin of ``App``)."""

    def _file_events(self) -> EventHandlers:
        return {ev.FileOffered: self._on_file_offered, ev.FileProgress: self._on_file_progress,
                ev.FileDone: self._on_file_done, ev.FileFailed: self._on_file_failed}

    def send_file(self, nick: str) -> None:
        engine = self.engine
        tab = self._peer_view(nick)
        if engine is None or self.transfers is None:
            tab.view.add_system("Sending files is not available in this version.", error=True)
            return
        names = filedialog.askopenfilenames(parent=self.root, title=f"Send files to {nick}")
        paths = [Path(n) for n in self.root.tk.splitlist(names)] if names else []
        if not paths:
            return
        try:
            ids = engine.offer_files(nick, paths)
        except Exception as exc:
            tab.view.add_system(f"Cannot offer the files: {exc}", error=True)
            return
        for transfer_id, path in zip(ids or (), paths, strict=False):
            self.files.waiting(transfer_id, nick, path.name)
        listed = ", ".join(f"“{p.name}”" for p in paths[:5]) + ("…" if len(paths) > 5 else "")
        tab.view.add_system(f"Offered {listed} to {nick}; waiting for an answer.")

    def _send_file_current(self) -> None:
        tab = self.current_tab()
        nick = tab.peer if tab is not None and tab.peer else self.roster.selected()
        if nick is not None:
            self.send_file(nick)
        else:
            self.room.view.add_system("Choose someone in the list first, then Send file…")

    def _answer_file(self, answer: Callable[[int], None], transfer_id: int) -> None:
        try:
            answer(transfer_id)
        except Exception as exc:
            log.warning("%r(%d) failed: %r", answer, transfer_id, exc)

    def _accept_file(self, transfer_id: int) -> None:
        if self.engine is not None:
            self._answer_file(self.engine.accept_file, transfer_id)

    def _decline_file(self, transfer_id: int) -> None:
        if self.engine is not None:
            self._answer_file(self.engine.decline_file, transfer_id)

    def _cancel_file(self, transfer_id: int) -> None:
        if self.engine is not None:
            self._answer_file(self.engine.cancel_file, transfer_id)

    def _files_changed(self, has_rows: bool) -> None:
        if has_rows and not self.files.winfo_manager():
            self.files.pack(side="bottom", fill="x", before=self.panes)
        elif not has_rows and self.files.winfo_manager():
            self.files.pack_forget()

    def choose_downloads(self) -> None:
        chosen = filedialog.askdirectory(parent=self.root, initialdir=str(self.downloads),
                                         title="Where received files are saved", mustexist=False)
        if chosen:
            self.set_downloads(Path(chosen))

    def set_downloads(self, folder: Path) -> None:
        """Where received files go from now on (remembered in the settings)."""
        self.downloads = folder
        self.settings["downloads"] = str(folder)
        if self.transfers is not None:
            self.transfers.downloads = folder     # transfers accepted from now on land there
        if self.main_frame is not None:
            self.room.view.add_system(f"Received files will be saved in {folder}.")

    def _on_file_offered(self, e: ev.FileOffered) -> None:
        if self.files.offer(e.transfer_id, e.sender, e.name, e.size):
            tab = self.open_private(e.sender, select=False)
            tab.view.add_system(f"{e.sender} offers the file “{e.name}” "
                                f"({human_size(e.size)}): Accept or Decline below.")
            self._bump_unread(tab)
            self._ask_attention(f"{e.sender} offers a file", e.name, urgent=True)

    def _on_file_progress(self, e: ev.FileProgress) -> None:
        self.files.progress(e.transfer_id, e.peer, e.name, e.done, e.total, e.bytes_per_s,
                            e.outgoing)

    def _on_file_done(self, e: ev.FileDone) -> None:
        self.files.finish(e.transfer_id)
        if e.outgoing:
            text = f"“{e.name}” was sent to {e.peer}."
        else:
            text = f"Received “{e.name}” from {e.peer}" + (f": saved as {e.path}" if e.path
                                                           else ".")
        self._peer_view(e.peer).view.add_system(text)

    def _on_file_failed(self, e: ev.FileFailed) -> None:
        self.files.finish(e.transfer_id)
        way = "to" if e.outgoing else "from"
        self._peer_view(e.peer).view.add_system(
            f"File “{e.name}” {way} {e.peer} failed: {e.reason}", error=True)
