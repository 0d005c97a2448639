"""CSV reports: one row per case, appended and flushed the moment the case ends.

A report already on disk is never replaced: writing to an existing file needs `append=True`,
and appending rows with new columns rewrites the file atomically with the union of columns.
Raw timing samples would make the CSV untidy, so they go to a JSON-lines sidecar beside it,
`<report>.samples.jsonl`: one object per timed row, its identity columns, `time_samples_ms`
(every sample, in ms) and `time_sample_process` (for each sample, the index of the process that
measured it, from 0; sidecars without it hold one process).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import IO, Sequence

from attnbench.errors import AttnbenchError
from attnbench.metric import SAMPLES_KEY, sample_groups
from attnbench.schema import IDENTITY, row_key

REPORTS_DIR = Path("reports")
PROCESS_KEY = "time_sample_process"


def sidecar_path(report: str | Path) -> Path:
    return Path(f"{report}.samples.jsonl")


def _cell(value: object) -> object:
    return "" if value is None else value


def _read_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


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
        self.rows_written = 0
        self._file: IO[str] | None = None

    @property
    def to_stdout(self) -> bool:
        return self.target == "-"

    def __enter__(self) -> "CsvReport":
        if self.to_stdout:
            self._file, write_header = sys.stdout, True
        else:
            path = Path(self.target)
            exists = path.exists() and path.stat().st_size > 0
            if exists and not self.append:
                raise AttnbenchError(f"{path} already exists; pass --append to add rows to it, "
                                     "or choose another -o/--output")
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
        groups = sample_groups(row.get(SAMPLES_KEY))
        self._writer.writerow({k: _cell(v) for k, v in row.items() if k != SAMPLES_KEY})
        self._file.flush()  # a killed run keeps every finished row
        if groups and not self.to_stdout:
            if self._samples is None:
                self._samples = sidecar_path(self.target).open("a")
            identity = {k: v for k, v in row.items() if k in IDENTITY or k.startswith("param_")}
            samples = {SAMPLES_KEY: [x for g in groups for x in g],
                       PROCESS_KEY: [i for i, g in enumerate(groups) for _ in g]}
            self._samples.write(json.dumps({**identity, **samples}) + "\n")
            self._samples.flush()
        self.rows_written += 1

    def __exit__(self, *exc: object) -> None:
        if self._file is not None and not self.to_stdout:
            self._file.close()
        if self._samples is not None:
            self._samples.close()


def read_report(path: str | Path):
    """Load a CSV report as a DataFrame; an unreadable file is a one-line error."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise AttnbenchError(f"report {path} does not exist; give the path of a CSV written by 'attnbench run'")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AttnbenchError(f"cannot read report {path}: {reason}") from None
    missing = {"method", "seq_len", "status"} - set(frame.columns)
    if missing:
        raise AttnbenchError(f"{path} is not an attnbench report (missing columns: {', '.join(sorted(missing))})")
    return frame


def read_samples(report: str | Path) -> dict[tuple, list[list[float]]]:
    """Raw timing samples (ms) by row key, one list per process, from the report's sidecar
    (empty if there is none)."""
    path = sidecar_path(report)
    if not path.is_file():
        return {}
    samples = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        values, processes = entry.pop(SAMPLES_KEY, None), entry.pop(PROCESS_KEY, None)
        if not values:
            continue
        groups: dict[int, list[float]] = {}
        for value, process in zip(values, processes or [0] * len(values)):
            groups.setdefault(int(process), []).append(float(value))
        samples[row_key(entry)] = [groups[p] for p in sorted(groups)]
    return samples
