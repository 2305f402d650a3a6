"""The resume store: files arrive as ``NAME.part`` plus a ``NAME.part.json`` sidecar.

The sidecar names the peer, the file name, size and mtime; a later offer of the same file
from the same peer resumes from the ``.part`` length. Verified files get a fresh name
(``name (1).ext``), never overwriting anything.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from pathlib import Path
from typing import BinaryIO

from client.config import load_json
from client.files import stream as fs
from client.files.names import candidate_names, reserve_unique
from client.files.state import Transfer

log = logging.getLogger(__name__)

PART = ".part"
SIDECAR = ".part.json"


class ResumeStore:
    """Hands out ``.part`` files, one transfer each. ``lock`` is the manager's (the engine
    thread takes it): the disk work happens outside it."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.in_use: set[Path] = set()

    def open(self, t: Transfer, folder: Path) -> tuple[BinaryIO, int]:
        """Open the ``.part`` to write in ``folder``: the matching one of an interrupted
        transfer (resume) or a fresh one with its sidecar. Returns (file, bytes already there)."""
        ident = {"v": 1, "peer": t.peer, "name": t.name, "size": t.size, "mtime_ns": t.mtime_ns}
        folder.mkdir(parents=True, exist_ok=True)
        found = _resumable(folder, ident)   # disk I/O: outside the lock
        with self._lock:
            part = next((p for p in found if p not in self.in_use), None)
            if part is not None:
                self.in_use.add(part)
                t.part = part
        if part is None:
            part = self._fresh(folder, t)
        # Not fsynced: losing the sidecar in a crash only costs the resume, and offers should
        # not wait for the disk.
        sidecar(part).write_text(json.dumps(ident), encoding="utf-8")
        out = open(part, "r+b")   # noqa: SIM115 -- closed by the receiver's release
        offset = min(out.seek(0, os.SEEK_END), t.size)
        if offset:
            log.info("resuming %s from %s at %d bytes", t.name, t.peer, offset)
        return out, offset

    def _fresh(self, folder: Path, t: Transfer) -> Path:
        """Create a new empty ``.part`` for ``t`` under a name nobody uses. The disk work
        (up to thousands of checks on a slow folder) is outside the lock; the exclusive
        create settles races with other transfers and processes."""
        for c in candidate_names(t.name):
            part = folder / (c + PART)
            if sidecar(part).exists():
                continue
            try:
                with open(part, "xb"):
                    pass
            except FileExistsError:
                continue
            with self._lock:
                if part not in self.in_use:  # its file was deleted under a live transfer
                    self.in_use.add(part)
                    t.part = part
                    return part
        raise fs.StreamError("no free name for the partial file")

    def release(self, part: Path | None) -> None:
        """``part`` is free for another transfer (call with the lock held)."""
        self.in_use.discard(part)

    @staticmethod
    def finish(t: Transfer, out: BinaryIO) -> Path:
        """Verified: flush to disk and move into place under a name nobody uses."""
        out.flush()
        os.fsync(out.fileno())
        out.close()
        assert t.part is not None
        target = reserve_unique(t.part.parent, t.name)   # same filesystem: os.replace works
        os.replace(t.part, target)
        sidecar(t.part).unlink(missing_ok=True)
        return target

    @staticmethod
    def drop(t: Transfer) -> None:
        """Delete ``t``'s ``.part`` and sidecar (cancelled, or nothing in it)."""
        if t.outgoing or t.part is None:
            return
        for p in (t.part, sidecar(t.part)):
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", p, exc)


def _resumable(folder: Path, ident: dict) -> list[Path]:
    """``.part`` files in ``folder`` whose sidecar matches ``ident``, longest first."""
    found = []
    try:
        entries = list(itertools.islice(folder.iterdir(), 10_000))
    except OSError:
        return []
    for side in entries:
        if not side.name.endswith(SIDECAR):
            continue
        part = side.with_name(side.name[:-len(".json")])
        try:
            if side.stat().st_size > 4096:
                continue
            length = part.stat().st_size
        except OSError:
            continue
        if length <= ident["size"] and load_json(side) == ident:
            found.append((length, part))
    return [p for _, p in sorted(found, key=lambda lp: lp[0], reverse=True)]


def is_empty(part: Path | None) -> bool:
    try:
        return part is not None and part.stat().st_size == 0
    except OSError:
        return False


def sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")
