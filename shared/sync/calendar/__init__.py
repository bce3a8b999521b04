"""Calendar mapping internals (SPEC R3.9): the public face is ``shared.sync.calendar_mapping``."""
