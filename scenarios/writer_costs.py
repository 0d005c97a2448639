"""What writing a report costs per row: 1,000 tiny rows (a full row's columns, every value set)
through attnbench.results.report.CsvReport, each with a samples record, into a temporary folder; the
median of 5 runs. Usage: python scenarios/writer_costs.py [--rows 1000]. Prints a Markdown line."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from attnbench.plan.case import Case
from attnbench.results.report import CsvReport
from attnbench.results.schema import Row, columns_for, new_row


def per_row_us(rows: int, fsync: bool = False) -> float:
    case = Case("full", seq_len=128, threads=1)
    columns = columns_for([case])
    row = Row({**new_row(case), "status": "ok", "time_ms_median": 1.0, "flops": 123456},
              samples=[[1.0, 1.1, 0.9, 1.0, 1.05]])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        with CsvReport(Path(folder) / "r.csv", columns, fsync=fsync) as report:
            for _ in range(rows):
                report.write(row)
        return (time.perf_counter() - start) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--fsync", action="store_true", help="sync every row (where the writer can)")
    args = parser.parse_args()
    runs = [per_row_us(args.rows, args.fsync) if args.fsync else per_row_us(args.rows) for _ in range(5)]
    print(f"| {args.rows} rows{', fsync' if args.fsync else ''}, {sys.platform} | {statistics.median(runs):.1f} us per "
          f"row (median of 5; {min(runs):.1f}-{max(runs):.1f}) |")


if __name__ == "__main__":
    main()
