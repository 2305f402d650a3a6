"""Reaching peers: per-peer paths (``paths``), behind-NAT detection (``nat``), LAN discovery
(``discovery`` = pure codec and cache, ``lan`` = its socket edge).

Everything here except ``lan`` is sans-IO: no sockets, no threads, time passed in as ``now``.
"""
