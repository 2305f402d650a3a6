"""Channels, topics, actions, away, renames, history and messages that wait (issue 11).

Sans-IO modules: ``names`` (channel names), ``wire`` (the chat control messages, leading byte
``C``), ``channels`` (the channel state machine), ``backfill`` (what members missed),
``commands`` (the one slash-command table), ``lines`` (terminal lines). ``history`` is the only
module doing I/O (peewee SQLite). ``api`` declares what the engine offers the command table.
"""
