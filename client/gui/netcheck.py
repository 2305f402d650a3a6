""""Network check": how reachable we are (``/netcheck`` in a window): our public address as the
directory sees it, NAT or not, our LAN addresses, the LAN peers and servers heard, whether
unsolicited UDP reaches us, the paths to peers. The lines come from the engine (asked off the
Tk thread: the engine may take a moment), shown read-only with a "Check again" button."""

from __future__ import annotations

import logging
import threading
import tkinter as tk
from tkinter import ttk

from client.gui.base import Window

log = logging.getLogger(__name__)

AGAIN_MS = 2500   # the directory's probe answer takes up to 2 s: look again once by itself


class NetcheckDialog:
    def __init__(self, app: Window) -> None:
        self.app = app
        top = self.top = tk.Toplevel(app.root)
        top.title("Network check")
        top.transient(app.root)
        frame = ttk.Frame(top, padding=16)
        frame.pack(fill="both", expand=True)
        self.text = tk.Text(frame, width=72, height=12, wrap="word", relief="flat")
        self.text.grid(row=0, column=0, columnspan=2, sticky="nsew")
        self.again = ttk.Button(frame, text="Check again", command=self.refresh)
        self.again.grid(row=1, column=0, sticky="w", pady=(10, 0))
        ttk.Button(frame, text="Close", command=top.destroy).grid(row=1, column=1, sticky="e",
                                                                  pady=(10, 0))
        frame.columnconfigure(0, weight=1)
        frame.rowconfigure(0, weight=1)
        top.bind("<Escape>", lambda _e: top.destroy())
        self.refresh()
        top.after(AGAIN_MS, self.refresh)

    def refresh(self) -> None:
        engine = self.app.engine
        if engine is None:
            self.show(["not connected"])
            return

        def work() -> None:  # off the Tk thread; the answer comes back through the app's queue
            try:
                lines = engine.netcheck()
            except Exception as exc:
                log.info("netcheck failed: %r", exc)
                lines = [f"network check failed: {exc}"]
            self.app.on_tk_thread(lambda: self.show(lines))

        threading.Thread(target=work, name="gui-netcheck", daemon=True).start()

    def show(self, lines: list[str]) -> None:
        try:
            if not self.top.winfo_exists():
                return
            self.text.configure(state="normal")
            self.text.delete("1.0", "end")
            self.text.insert("1.0", "\n".join(lines))
            self.text.configure(state="disabled")
        except tk.TclError:
            pass  # closed meanwhile
