"""Asking for the user's attention without heavy dependencies.

- an unread count in the window title (``title_for``, pure);
- ``notify-send`` on Linux when ``shutil.which`` finds it (started, never waited for);
- the taskbar button flashing on Windows (``FlashWindowEx`` through ctypes).

Everything here fails quietly: attention is a courtesy, never a reason to crash.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)

APP_TITLE = "OpenLChat"
NOTIFY_MIN_INTERVAL = 5.0   # seconds between two desktop notifications
MAX_CHILDREN = 4            # notify-send processes not yet reaped


def title_for(nickname: str | None, unread: int, server_online: bool = True) -> str:
    """The window title: ``(3) OpenLChat — alice`` when three messages wait unread."""
    title = APP_TITLE if not nickname else f"{APP_TITLE} — {nickname}"
    if not server_online and nickname:
        title += " (server unreachable)"
    return f"({unread}) {title}" if unread > 0 else title


def _flash_windows(hwnd: int) -> None:
    import ctypes
    from ctypes import wintypes

    class FLASHWINFO(ctypes.Structure):
        _fields_ = [("cbSize", wintypes.UINT), ("hwnd", wintypes.HWND),
                    ("dwFlags", wintypes.DWORD), ("uCount", wintypes.UINT),
                    ("dwTimeout", wintypes.DWORD)]

    flash_all, flash_until_foreground = 0x3, 0xC
    info = FLASHWINFO(ctypes.sizeof(FLASHWINFO), hwnd, flash_all | flash_until_foreground, 0, 0)
    ctypes.windll.user32.FlashWindowEx(ctypes.byref(info))  # type: ignore[attr-defined]


class Attention:
    """Desktop notifications and taskbar flashing, rate-limited, failing quietly."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._notify_send = shutil.which("notify-send") if sys.platform != "win32" else None
        self._last_notify = float("-inf")
        self._children: list[subprocess.Popen[bytes]] = []
        self.sent: list[tuple[str, str]] = []   # what was shown, for tests and logs

    def notify(self, title: str, body: str, now: float) -> bool:
        """A desktop notification, at most one per NOTIFY_MIN_INTERVAL. True if one was started."""
        self._reap()
        if not self.enabled or now - self._last_notify < NOTIFY_MIN_INTERVAL:
            return False
        self._last_notify = now
        self.sent.append((title, body))
        if not self._notify_send or len(self._children) >= MAX_CHILDREN:
            return False
        try:
            child = subprocess.Popen(
                # "--": a peer's text starting with "-" must not become an option
                [self._notify_send, "--app-name", APP_TITLE, "--", title, body[:200]],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log.info("notify-send failed, desktop notifications off: %s", exc)
            self._notify_send = None
            return False
        self._children.append(child)
        return True

    def flash(self, hwnd: int | None) -> None:
        """Flash the taskbar button until the window comes to the foreground (Windows only)."""
        if not self.enabled or sys.platform != "win32" or not hwnd:
            return
        try:
            _flash_windows(hwnd)
        except Exception as exc:  # no user32, odd handle...: stay quiet
            log.debug("FlashWindowEx failed: %s", exc)

    def _reap(self) -> None:
        # poll() collects finished children so they never pile up as zombies
        self._children = [c for c in self._children if c.poll() is None]
