"""The one exception type the command line turns into a one-line message."""


class TinyharError(Exception):
    """A failure the user can act on; its message is one line: what is wrong and what to do."""
