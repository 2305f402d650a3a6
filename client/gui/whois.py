""""Who is this?": a peer's key fingerprint to compare aloud, and "Mark as verified"."""

from __future__ import annotations

import contextlib
import logging
import queue
import tkinter as tk
from functools import partial
from tkinter import ttk
from typing import TYPE_CHECKING

from client import events as ev
from client.gui.base import POLL_MS, quietly
from client.gui.theme import font

if TYPE_CHECKING:
    from client.gui.key_handlers import KeyHandlers

log = logging.getLogger(__name__)

WHOIS_FETCH_S = 3.0           # "Who is this?" waits this long for a handshake to bring the key


class WhoisDialog:
    """"Who is this?": the key fingerprint to compare aloud, and "Mark as verified"."""

    def __init__(self, app: KeyHandlers, nick: str) -> None:
        self.app, self.nick = app, nick
        # the engine's answers (fetch_identity calls back on the engine thread), polled here
        self._answers: queue.SimpleQueue[ev.Whois | None] = queue.SimpleQueue()
        self._poll_id: str | None = None
        self.fetching = False
        top = self.top = tk.Toplevel(app.root)
        top.title(f"Who is {nick}?")
        top.transient(app.root)
        top.resizable(False, False)
        frame = ttk.Frame(top, padding=16)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text=nick, font=font(top, "TkHeadingFont", 14, "bold")).grid(
            row=0, column=0, columnspan=2, sticky="w")
        self.state_var = tk.StringVar(top)
        self.state_label = ttk.Label(frame, textvariable=self.state_var, wraplength=420,
                                     justify="left")
        self.state_label.grid(row=1, column=0, columnspan=2, sticky="w", pady=(6, 10))
        ttk.Label(frame, text=f"{nick}’s fingerprint").grid(row=2, column=0, sticky="w")
        self.fp_var = tk.StringVar(top)
        # read-only entries: selectable and copyable, unlike labels
        mono = font(top, "TkFixedFont", 11)
        ttk.Entry(frame, textvariable=self.fp_var, state="readonly", width=52,
                  font=mono).grid(row=3, column=0, columnspan=2, sticky="ew", pady=(2, 10))
        engine = app.engine
        own = quietly(engine.own_fingerprint) if engine is not None else None
        self.own_var = tk.StringVar(top, value=own or "")
        if self.own_var.get():
            ttk.Label(frame, text="Your fingerprint (read it to them)").grid(
                row=4, column=0, sticky="w")
            ttk.Entry(frame, textvariable=self.own_var, state="readonly", width=52,
                      font=mono).grid(row=5, column=0, columnspan=2, sticky="ew", pady=(2, 10))
        self.verify_button = ttk.Button(frame, text="Mark as verified",
                                        style="Accent.TButton", command=self.verify)
        self.verify_button.grid(row=6, column=0, sticky="w", pady=(4, 0))
        close = ttk.Button(frame, text="Close", command=top.destroy)
        close.grid(row=6, column=1, sticky="e", pady=(4, 0))
        top.bind("<Escape>", lambda _e: top.destroy())
        self._afters: list[str] = []
        self.refresh()
        self.verify_button.focus_set()
        # keyboard users land in the dialog even where the window manager does not focus it
        self._afters.append(top.after_idle(self._take_focus))
        top.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        # pending after() callbacks of a destroyed window would fire into deleted commands
        if event.widget is self.top:
            if self._poll_id is not None:
                self._afters.append(self._poll_id)
                self._poll_id = None
            for after_id in self._afters:
                with contextlib.suppress(tk.TclError):
                    self.top.after_cancel(after_id)
            self._afters.clear()

    def _take_focus(self) -> None:
        with contextlib.suppress(tk.TclError):
            if self.top.winfo_exists():
                self.top.focus_force()
                self.verify_button.focus_set()

    def refresh(self) -> None:
        """Ask the engine again. With no session yet it starts a handshake to learn the key;
        the answer comes back through ``_answers`` (the Tk thread never waits on the engine)."""
        if not self.fp_var.get():
            self.fp_var.set("(fetching…)")
            self.state_var.set(f"Fetching {self.nick}’s key: a secure session with them is "
                               "starting…")
            self.verify_button.configure(state="disabled")
        self.fetching = True
        engine = self.app.engine
        try:
            if engine is None:
                raise RuntimeError("not connected")
            engine.fetch_identity(self.nick, self._answers.put, WHOIS_FETCH_S)
        except Exception as exc:  # closed or failing engine: say "unknown", never hang
            log.warning("fetching %s's key failed: %r", self.nick, exc)
            self._answers.put(None)
        self._poll_answer()  # an answer may be there already (a key known, a failure)

    def _poll_answer(self) -> None:
        self._poll_id = None
        try:
            if not self.top.winfo_exists():
                return
            try:
                whois = self._answers.get_nowait()
            except queue.Empty:
                self._poll_id = self.top.after(POLL_MS, self._poll_answer)
                return
            self.fetching = False
            self.show(whois)
        except tk.TclError:
            pass

    def show(self, whois: ev.Whois | None) -> None:
        fingerprint = whois.fingerprint if whois is not None else None
        if fingerprint:
            self.fp_var.set(fingerprint)
        elif whois is None:
            self.fp_var.set(f"(unknown: {self.nick} is not online)")
        else:
            self.fp_var.set("(unknown: no answer to the secure handshake so far)")
        if whois is not None and whois.key_changed:
            self.state_var.set("⚠ This person’s key CHANGED since you first saw them. It may be "
                               "an impostor. Compare the fingerprint aloud before trusting.")
            self.state_label.configure(foreground=self.app.colours.error)
        elif whois is not None and whois.verified:
            self.state_var.set("✔ Verified: you compared this fingerprint before.")
        else:
            self.state_var.set("Not verified. Ask them to read their fingerprint aloud (in "
                               "person or by phone); if it matches, mark it as verified.")
        if whois is not None and whois.path is not None:  # LAN / direct through NAT / none yet
            self.state_var.set(f"{self.state_var.get()}\nPath: {whois.path}")
        verified = whois is not None and whois.verified and not whois.key_changed
        self.verify_button.configure(state="disabled" if verified or not fingerprint
                                     else "normal")

    def verify(self) -> None:
        """Saving the pins may fsync: the engine does it and answers on the Tk thread."""
        engine = self.app.engine
        if engine is None:
            return
        self.verify_button.configure(state="disabled")
        app, nick = self.app, self.nick
        quietly(lambda: engine.mark_verified_later(
            nick, lambda ok: app.on_tk_thread(partial(app._verified, nick, ok, self))))
