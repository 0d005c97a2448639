"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class AttnbenchError(Exception):
    """A problem with the user's input or files; the message says how to fix it."""

    exit_code = 1  # what the command line exits with


class NothingToCompare(AttnbenchError):
    """Two reports that share no case: a gate that compared nothing must not pass."""

    exit_code = 2
