"""Closing a row: when it ended, whose code the method is and the environment it ran in; and the
row of a case that produced no measurement. Every launcher builds its rows through these."""

from __future__ import annotations

import time

from attnbench.measure.machine.env import environment, method_provenance
from attnbench.plan.case import Case
from attnbench.results.schema import Row, new_row


def stamp(row: Row, case: Case) -> Row:
    """Close a row: when it ended, whose code the method is and the environment it ran in."""
    row["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    row.update(method_provenance(case.method))
    row.update(environment(case.device))
    return row


def failure_row(case: Case, status: str, detail: str) -> Row:
    """A row for a case that produced no measurement (its worker died, it ran out of time...)."""
    row = new_row(case)
    row.update(status=status, status_detail=detail)
    return stamp(row, case)
