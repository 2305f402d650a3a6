"""Our link to the directory server: TCP registration, the sans-IO UDP channel, the roster and
the saved session."""
