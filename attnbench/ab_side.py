"""A side's end of `attnbench ab`'s rounds (attnbench.ab.interleave starts it with the side's own code).

Kept apart from attnbench.ab.interleave, which the CLI imports: this module runs the CLI.
"""

from __future__ import annotations

import json
import os
import sys


def serve(reply_fd: int) -> None:
    """A side's end of ab's rounds, run from the side's own code: each line on stdin is a round's
    command line (JSON), run here as `attnbench.cli.main` runs it, and its exit code goes back on
    `reply_fd`. Every case still runs in a fresh worker; what this process keeps from one round
    to the next is its imports, the workers' template and the measured GEMM rate."""
    import attnbench
    from attnbench.cli import main

    if os.path.dirname(os.path.abspath(__file__)) != os.path.dirname(os.path.abspath(attnbench.__file__)):
        sys.exit(1)  # found outside the side's package (an editable install's finder): its code has no ab_side
    with os.fdopen(reply_fd, "w", buffering=1) as reply:
        reply.write("ready\n")
        for line in sys.stdin:
            try:
                main(json.loads(line))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            sys.stdout.flush()
            sys.stderr.flush()
            reply.write(f"{code}\n")
