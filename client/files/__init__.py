"""Peer-to-peer file transfer over direct TCP (secretstream); see ``manager`` for the contract.

Parts: ``control`` (the control protocol, sans-IO), ``listener`` (the flood-guarded TCP
listener), ``sender`` and ``receiver`` (the workers), ``resume`` (the ``.part`` store),
``state`` (a transfer's state), ``wire`` (codecs), ``stream`` (the encrypted stream),
``names`` (safe file names).
"""

from client.files.manager import FileTransfers

__all__ = ["FileTransfers"]
