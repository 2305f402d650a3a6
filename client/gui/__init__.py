"""The Tk face (the only package that imports tkinter): ``App`` and ``main`` in app.py."""

from client.gui.app import App, main
from client.gui.whois import WhoisDialog

__all__ = ["App", "WhoisDialog", "main"]
