"""The one exception type users see: a clear, one-line message, never a traceback."""


class DSEError(ValueError):
    """Bad input or a bad file; the message names the bad value and what is allowed."""
