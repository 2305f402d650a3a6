"""Sans-IO wire formats and data models shared by the server and the client.

Importing the codec modules must never import gevent, peewee or tkinter: the
client reuses them. Only ``models.store`` (the server's peewee table) imports peewee.
"""
