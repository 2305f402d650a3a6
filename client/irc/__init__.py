"""The IRC gateway: a third face that lets an IRC client (irssi, WeeChat, HexChat, bots) drive
the engine. ``protocol`` (line codec), ``session`` (per-connection state machine), ``server``
(the TCP listener)."""
