"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class AttnbenchError(Exception):
    """A problem with the user's input or files; the message says how to fix it."""

    exit_code = 1  # what the command line exits with


class NothingToCompare(AttnbenchError):
    """A comparison that could judge nothing (no shared case, a metric a side lacks, two rows for
    one case): a gate that compared nothing must not pass."""

    exit_code = 2


class OutputClosed(AttnbenchError):
    """The reader of standard output went away (`attnbench run -o - | head`): stop quietly, with
    the exit status of a process ended by SIGPIPE, as `yes | head` does."""

    exit_code = 141
