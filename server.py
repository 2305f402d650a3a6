"""OpenLChat directory server: who is online, and where. It never relays messages.

    python server.py [--host 0.0.0.0] [--port 7700] [--db openlchat.db] [--ping-interval 10]

One process, gevent, no monkey-patching: a ``StreamServer`` (TCP, registration: CONNECT /
REFERENCE? / CHANNEL_SWITCH / INFO?) and a ``DatagramServer`` (UDP: PING / QUIT in, REF_ADD /
REF_DEL / PONG / UNKNOWN out) on the same port number. The logic is ``models.directory``
(pure, takes ``now``); the edges in ``dirserver/`` only decode, call, encode and send. SQLite
writes run in one worker thread so a slow or locked database never stalls the UDP loop. See
docs/PROTOCOL.md.
"""

from __future__ import annotations

import sys

from dirserver.cli import main

if __name__ == "__main__":
    sys.exit(main())
