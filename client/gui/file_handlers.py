"""Files in the window: offering, answering offers, progress, the downloads folder."""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog, messagebox  # noqa: F401  (tests replace file_handlers.filedialog's dialogs)
from typing import Any

from client import events as ev
from client.gui.base import EventHandlers, Window
from client.gui.filepick import ask_open_files
from client.gui.opener import open_path, runs_code
from client.wording import human_size

log = logging.getLogger(__name__)


class FileHandlers(Window):
    """File transfer (a mixin of ``App``)."""

    _dnd: bool | None      # tkinterdnd2 loaded (None: not tried yet)

    def _file_events(self) -> EventHandlers:
        return {ev.FileOffered: self._on_file_offered, ev.FileProgress: self._on_file_progress,
                ev.FileDone: self._on_file_done, ev.FileFailed: self._on_file_failed}

    def send_file(self, nick: str) -> None:
        engine = self.engine
        tab = self._peer_view(nick)
        if engine is None or self.transfers is None:
            tab.view.add_system("Sending files is not available in this version.", error=True)
            return
        paths = ask_open_files(self.root, f"Send files to {nick}", self._start_folder())
        if not paths:
            return
        self.settings["last_folder"] = str(paths[0].parent)
        self.offer_paths(nick, paths)

    def _start_folder(self) -> Path:
        """Where the file dialog opens: the folder used last, else the home folder (never the
        folder the app was started from)."""
        last = self.settings.get("last_folder")
        if isinstance(last, str) and last and Path(last).is_dir():
            return Path(last)
        return Path.home()

    def offer_paths(self, nick: str, paths: list[Path]) -> None:
        """Offer ``paths`` to ``nick`` (the file dialog, or files dropped on the window)."""
        engine = self.engine
        tab = self._peer_view(nick)
        if engine is None or self.transfers is None:
            tab.view.add_system("Sending files is not available in this version.", error=True)
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

    # --- drag and drop (tkinterdnd2, optional) -------------------------------------------------
    def _drop_target(self, widget: tk.Misc) -> None:
        """Let files be dropped on ``widget`` when tkinterdnd2 (and its Tk extension) load."""
        if not self._dnd_ready():
            return
        try:
            widget.drop_target_register("DND_Files")  # type: ignore[attr-defined]
            widget.dnd_bind("<<Drop>>", self._dropped)  # type: ignore[attr-defined]
        except (tk.TclError, AttributeError) as exc:
            log.debug("no drop target on %s: %r", widget, exc)

    def _dnd_ready(self) -> bool:
        if self._dnd is None:
            try:
                from tkinterdnd2 import TkinterDnD
                TkinterDnD._require(self.root)
                self._dnd = True
            except Exception as exc:   # not installed, or no tkdnd build for this platform
                log.info("drag and drop unavailable: %r", exc)
                self._dnd = False
        return self._dnd

    def _dropped(self, event: Any) -> str:   # a tkinterdnd2.DnDEvent: .data lists the paths
        data = str(event.data)
        self.files_dropped([Path(p) for p in self.root.tk.splitlist(data) if p])
        return "copy"

    def files_dropped(self, paths: list[Path]) -> None:
        """Files dropped on the window go to the private conversation shown, never to whoever
        happens to be selected in the list (an old click must not pick the recipient)."""
        files = [p for p in paths if p.is_file()]
        tab = self.current_tab()
        nick = tab.peer if tab is not None and tab.peer else None
        if not files:
            self.room.view.add_system("Only files can be sent (not folders).", error=True)
        elif nick is None:
            self.room.view.add_system("To send files, drop them on a private conversation "
                                      "(double-click a name to open one).")
        else:
            self.offer_paths(nick, files)

    def _files_changed(self, has_rows: bool) -> None:
        if has_rows and not self.files.winfo_manager():
            self.files.pack(side="bottom", fill="x", before=self.panes)
        elif not has_rows and self.files.winfo_manager():
            self.files.pack_forget()

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
        view = self._peer_view(e.peer).view
        if e.outgoing or not e.path:
            view.add_system(text)
            return
        path = Path(e.path)
        view.add_system(text, links=[("Open", lambda: self._open(path, False)),
                                     ("Show in folder", lambda: self._open(path, True))])

    def _open(self, path: Path, reveal: bool) -> None:
        if not reveal and runs_code(path) and not messagebox.askyesno(
                "Run a program?",
                f"“{path.name}” is a program or script: opening it runs it with your rights. "
                "Only do this if you trust the sender and expected this file.\n\nRun it?",
                icon="warning", default="no", parent=self.root):
            return
        problem = open_path(path, reveal=reveal)
        if problem:
            self.room.view.add_system(problem, error=True)

    def _on_file_failed(self, e: ev.FileFailed) -> None:
        self.files.finish(e.transfer_id)
        way = "to" if e.outgoing else "from"
        self._peer_view(e.peer).view.add_system(
            f"File “{e.name}” {way} {e.peer} failed: {e.reason}", error=True)
