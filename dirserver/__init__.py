"""The directory server's I/O edges (gevent, sockets, the database thread).

``server.py`` is the entry point; the logic is ``models.directory`` (pure, takes ``now``).

* ``cli``      -- arguments, logging, start-up and shutdown (``main``)
* ``app``      -- ``DirectoryServer``: builds the parts below and reports stats
* ``tcp``      -- the registration channel: one greenlet per connection
* ``udp``      -- the datagram channel: PING/QUIT in, coalesced REF_ADD/REF_DEL pushes out
* ``storage``  -- the one thread that writes SQLite (group commit, retries)
"""
