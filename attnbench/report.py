"""CSV reports: one row per case, appended and flushed the moment the case ends; one reader.

A report already on disk is never replaced: writing to an existing file needs `append=True`
(`check_target` says so before anything runs), and appending rows with new columns rewrites the
file atomically with the union of columns. Raw timing samples would make the CSV untidy, so a
row's timing record (`Row.samples`) goes to a JSON-lines sidecar beside it,
`<report>.samples.jsonl`: one object per timed row, its identity columns, `time_samples_ms`
(every sample, in ms) and `time_sample_process` (for each sample, the index of the process that
measured it, from 0; sidecars without it hold one process).

`load` is the one way back in: it applies the schema's column types to every cell (attnbench.
schema.convert), gives the identity columns an older report lacks Case's defaults, attaches each
row's samples from the sidecar, and serves compare, summary, plot, resume and the Python API.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from attnbench.case import Case
from attnbench.errors import AttnbenchError
from attnbench.schema import IDENTITY, REQUIRED, Row, column_type, convert

REPORTS_DIR = Path("reports")
SAMPLES_COLUMN = "time_samples_ms"
PROCESS_COLUMN = "time_sample_process"


def sidecar_path(report: str | Path) -> Path:
    return Path(f"{report}.samples.jsonl")


def _cell(value: object) -> object:
    return "" if value is None else value


def _read_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def check_target(target: str | Path | None, append: bool) -> None:
    """Refuse, in one line, to write to a report that exists unless rows are to be added to it."""
    if target is None or str(target) == "-":
        return
    path = Path(target)
    if path.is_file() and path.stat().st_size and not append:
        raise AttnbenchError(f"{path} already exists; pass --append to add rows to it, or choose another -o/--output")


def _merge_columns(path: Path, columns: list[str]) -> list[str]:
    """Columns for appending to `path`; rewrites it (atomically) if new columns must be added."""
    header = _read_header(path)
    if not header:
        raise AttnbenchError(f"{path} is not an attnbench CSV report (no header); choose another -o")
    merged = header + [c for c in columns if c not in header]
    if merged != header:
        with path.open(newline="") as f:
            old_rows = list(csv.DictReader(f))
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, merged, restval="")
            writer.writeheader()
            writer.writerows(old_rows)
        os.replace(tmp, path)
    return merged


class CsvReport:
    """Context manager writing rows to a CSV file, or to stdout for '-'.

    Args:
        target: file path, or '-' for standard output.
        columns: the column order (rows may omit columns; extra keys are an error).
        append: add to an existing report instead of refusing to touch it.
    """

    def __init__(self, target: str | Path, columns: Sequence[str], *, append: bool = False) -> None:
        self.target, self.columns, self.append = str(target), list(columns), append
        self._file: IO[str] | None = None

    @property
    def to_stdout(self) -> bool:
        return self.target == "-"

    def __enter__(self) -> "CsvReport":
        if self.to_stdout:
            self._file, write_header = sys.stdout, True
        else:
            check_target(self.target, self.append)
            path = Path(self.target)
            exists = path.exists() and path.stat().st_size > 0
            if exists:
                self.columns = _merge_columns(path, self.columns)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file, write_header = path.open("a", newline=""), not exists
        self._writer = csv.DictWriter(self._file, self.columns, restval="")
        if write_header:
            self._writer.writeheader()
            self._file.flush()
        self._samples = None  # opened with the first timed row
        return self

    def write(self, row: dict) -> None:
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._file.flush()  # a killed run keeps every finished row
        groups = getattr(row, "samples", None)
        if groups and not self.to_stdout:
            if self._samples is None:
                self._samples = sidecar_path(self.target).open("a")
            identity = {k: v for k, v in row.items() if k in IDENTITY or k.startswith("param_")}
            samples = {SAMPLES_COLUMN: [x for g in groups for x in g],
                       PROCESS_COLUMN: [i for i, g in enumerate(groups) for _ in g]}
            self._samples.write(json.dumps({**identity, **samples}) + "\n")
            self._samples.flush()

    def __exit__(self, *exc: object) -> None:
        if self._file is not None and not self.to_stdout:
            self._file.close()
        if self._samples is not None:
            self._samples.close()


@dataclass
class Report:
    """A report read back: its path, its columns in file order, and its typed rows."""

    path: Path
    columns: list[str]
    rows: list[Row]

    @property
    def frame(self):
        """The rows as a pandas DataFrame (columns in the file's order; blanks are NaN)."""
        import pandas as pd

        return pd.DataFrame([dict(r) for r in self.rows], columns=self.columns)

    def cases(self) -> set[Case]:
        """The cases the report holds a result for (a 'max_seq' summary row is not one)."""
        return {row.case for row in self.rows if row.get("status") not in (None, "max_seq")}


def _typed(record: dict[str, str], types: dict[str, type | None]) -> Row:
    row = Row({column: convert(value, types[column]) for column, value in record.items() if column is not None})
    for column in IDENTITY:  # an older report: the identity it lacks is Case's default
        if column not in row and column != "method":
            row[column] = getattr(Case, column, None)
    return row


def load(path: str | Path, *, complete: bool = False) -> Report:
    """Read a report: typed rows, each with its samples from the sidecar. An unreadable file is a
    one-line error; with `complete`, so is a report that lacks a column every report has."""
    path = Path(path)
    if not path.is_file():
        raise AttnbenchError(f"report {path} does not exist; give the path of a CSV written by 'attnbench run'")
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            records = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AttnbenchError(f"cannot read report {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    missing = {"method", "seq_len", "status"} - set(columns)
    if missing:
        raise AttnbenchError(f"{path} is not an attnbench report (missing columns: {', '.join(sorted(missing))})")
    if complete:
        lacking = [c for c in REQUIRED if c not in columns]
        if lacking or not records:
            raise AttnbenchError(f"{path} lacks the attnbench columns {', '.join(lacking)}; use reports written by "
                                 "'attnbench run' or 'sweep' (a filtered copy must keep every column)" if lacking
                                 else f"{path} is not an attnbench report (no rows)")
    types = {column: column_type(column) for column in columns}
    rows = [_typed(record, types) for record in records]
    samples = read_samples(path)
    for row in rows:
        row.samples = samples.get(row.case)
    return Report(path, columns, rows)


def read_samples(report: str | Path) -> dict[Case, list[list[float]]]:
    """Raw timing samples (ms) by case, one list per process, from the report's sidecar (empty if
    there is none)."""
    path = sidecar_path(report)
    if not path.is_file():
        return {}
    samples = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        values, processes = entry.pop(SAMPLES_COLUMN, None), entry.pop(PROCESS_COLUMN, None)
        if not values:
            continue
        groups: dict[int, list[float]] = {}
        for value, process in zip(values, processes or [0] * len(values)):
            groups.setdefault(int(process), []).append(float(value))
        identity = _typed({k: None if v is None else str(v) for k, v in entry.items()},
                          {k: column_type(k) for k in entry})
        samples[identity.case] = [groups[p] for p in sorted(groups)]
    return samples
