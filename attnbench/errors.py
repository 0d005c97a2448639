"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class AttnbenchError(Exception):
    """A problem with the user's input or files; the message says how to fix it."""
