"""The one exception type that reaches users as a single clear line."""


class SsladError(Exception):
    """A user-facing error: bad input, bad flag, missing dependency.

    The CLI turns it into one line on stderr and a non-zero exit, never a traceback.
    """
