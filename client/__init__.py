"""OpenLChat client: one engine (no GUI, no gevent) and two faces, terminal and Tk."""
