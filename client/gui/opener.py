"""Open a received file, or show it in its folder, with what the operating system offers.

``open_command`` is pure (tested on every OS): Windows uses ``os.startfile`` (no command),
macOS ``open`` (``open -R`` selects the file in Finder), Linux and the BSDs ``xdg-open`` on the
file or its folder.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Names a peer chose that would run code when "opened" (Windows runs them with one click, and a
# file we wrote carries no mark-of-the-web for SmartScreen to ask about).
RUNS_CODE = frozenset({
    ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".msi", ".msp", ".msc", ".lnk", ".url",
    ".js", ".jse", ".vbs", ".vbe", ".wsf", ".wsh", ".hta", ".ps1", ".psm1", ".reg", ".cpl",
    ".jar", ".appimage", ".sh", ".run", ".desktop", ".command", ".app", ".py", ".pyw",
})


def runs_code(path: Path) -> bool:
    """Would opening ``path`` run it as a program? (By its name: a peer chose it.)"""
    return path.suffix.lower() in RUNS_CODE


def open_command(path: Path, *, reveal: bool = False,
                 platform: str = sys.platform) -> list[str] | None:
    """The command that opens ``path`` (or its folder with ``reveal``); None on Windows."""
    if platform == "win32":
        return None
    if platform == "darwin":
        return ["open", "-R", str(path)] if reveal else ["open", str(path)]
    return ["xdg-open", str(path.parent if reveal else path)]


def open_path(path: Path, *, reveal: bool = False) -> str | None:
    """Open ``path`` (or show it in its folder); an error in plain words, or None."""
    if not path.exists():
        return f"“{path.name}” is no longer at {path.parent}."
    try:
        if sys.platform == "win32":
            if reveal:   # Explorer with the file selected
                subprocess.Popen(["explorer", f"/select,{path}"])
            else:
                os.startfile(path)  # type: ignore[attr-defined]
            return None
        command = open_command(path, reveal=reveal)
        assert command is not None
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        log.warning("cannot open %s: %r", path, exc)
        return f"Cannot open “{path.name}”: {exc.strerror or exc}"
    return None
