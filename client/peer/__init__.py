"""The peer protocol: reliable messages (Messenger), the transports under them, keys and pins.

``messenger`` (facade) over ``sending`` and ``receiving`` (with ``rto``); ``secure`` (facade)
over ``handshake``, ``sealed`` and ``trust``; ``plain``; ``identity``; ``pins``.
"""
