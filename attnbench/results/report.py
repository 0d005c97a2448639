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
import errno
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from attnbench.errors import AttnbenchError, OutputClosed
from attnbench.plan.case import Case
from attnbench.results.schema import IDENTITY, REQUIRED, Row, column_type, convert

REPORTS_DIR = Path("reports")


def default_output(name: str, directory: Path = REPORTS_DIR) -> Path:
    """reports/<name>-YYYYmmdd-HHMMSS.csv, with a suffix if that name is taken."""
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = directory / f"{stem}.csv", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.csv"
    return path


SAMPLES_COLUMN = "time_samples_ms"
PROCESS_COLUMN = "time_sample_process"


def sidecar_path(report: str | Path) -> Path:
    return Path(f"{report}.samples.jsonl")


def _cell(value: object) -> object:
    return "" if value is None else value


def _read_header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def refuse_to_replace(paths, fix: str, why: str = "") -> None:
    """The one refusal to overwrite: a one-line error naming every path that already holds
    something (an empty file holds nothing), `why` after the names and `fix` after a semicolon."""
    taken = [str(p) for p in map(Path, paths) if p.exists() and not (p.is_file() and p.stat().st_size == 0)]
    if taken:
        raise AttnbenchError(f"{', '.join(taken)} already exists{why}; {fix}")


def check_target(target: str | Path | None, append: bool, can_append: bool = True) -> None:
    """Refuse, in one line, to write to a report that exists unless rows are to be added to it
    (`can_append`: whether the command has --append to say so)."""
    if target is None or str(target) == "-" or append:
        return
    hint = "pass --append to add rows to it, or choose" if can_append else "remove it or choose"
    refuse_to_replace([target], f"{hint} another -o/--output")


def write_table(path: str | Path, rows: list[dict]) -> Path:
    """Rows that are not a report's (a history's series, say) as a CSV, whole or not at all; an
    existing file is refused."""
    path = Path(path)
    refuse_to_replace([path], "choose another -o")
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
    return path


def _whole_rows_end(data: bytes) -> int:
    """How many bytes of a report's text are whole rows (the header included): a row is whole when
    it ends in a newline and has the header's number of fields (a row is one line: no cell holds one).
    Only the header and the last line are parsed."""
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a row cut mid-write
    header_end = data.find(b"\n") + 1
    if not end or end == header_end:
        return end
    last_start = data.rfind(b"\n", 0, end - 1) + 1

    def fields(line: bytes) -> int:
        return len(next(csv.reader([line.decode("utf-8", "replace")]), []))

    return last_start if fields(data[last_start:end]) != fields(data[:header_end]) else end


def repair_tail(path: Path, say=None) -> bool:
    """Cut a torn last row (or sidecar record) off `path`; True when there was one. `say` gets one
    line telling the user."""
    if not path.is_file() or not path.stat().st_size:
        return False
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1 if path.suffix == ".jsonl" else _whole_rows_end(data)
    if end == path.stat().st_size:
        return False
    with path.open("r+b") as f:
        f.truncate(end)
    if say:
        say(f"Note: {path} ended in a row cut mid-write; it was removed and its case runs again")
    return True


def _merge_columns(path: Path, columns: list[str]) -> list[str]:
    """Columns for appending to `path`; rewrites it (atomically, under the writer's lock) if new
    columns must be added."""
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


def lock_path(report: str | Path) -> Path:
    return Path(f"{report}.lock")


class _Lock:
    """An advisory lock (flock) on `<report>.lock`, held for a writer's whole life; the file names
    the process that holds it. Taken on the lock file, not the report, because adding columns
    replaces the report's file."""

    def __init__(self, report: Path, wait: bool) -> None:
        import fcntl

        self.path = lock_path(report)
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = os.read(self.fd, 200).decode(errors="replace").strip() or "another process"
                os.close(self.fd)
                raise AttnbenchError(f"{report} is being written by {holder}; wait for it to end (or pass --wait), "
                                     "or choose another -o") from None
            # the holder we waited for may have removed the file: lock the one that is there now
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                break
            os.close(self.fd)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"process {os.getpid()} ({' '.join(sys.argv[:3])[:120]})\n".encode())

    def release(self) -> None:
        os.unlink(self.path)
        os.close(self.fd)


def _write_whole(fd: int, data: bytes) -> None:
    """All of `data` at the end of the file, or nothing: a failed write is cut back."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.ftruncate(fd, start)
        raise


class CsvReport:
    """Context manager writing rows to a CSV file, or to stdout for '-'.

    One writer per report: it holds an advisory lock for its whole life (a second one is refused
    naming the first, or waits with `wait`). Rows are whole or absent: each row (and its sidecar
    record) is one write, cut back if the write fails; the error then says how many rows the
    report keeps. On appending, a torn last row left by a writer that was killed is cut first.

    Args:
        target: file path, or '-' for standard output.
        columns: the column order (rows may omit columns; extra keys are an error).
        append: add to an existing report instead of refusing to touch it.
        wait: wait for another writer of the report to end instead of refusing.
        fsync: sync every row to the disk (a power cut keeps it too).
        say: where one-line notes go (a torn row that was cut); default stderr.
    """

    def __init__(self, target: str | Path, columns: Sequence[str], *, append: bool = False, wait: bool = False,
                 fsync: bool = False, say=None) -> None:
        self.target, self.columns, self.append = str(target), list(columns), append
        self.wait, self.fsync = wait, fsync
        self.say = say or (lambda line: print(line, file=sys.stderr))
        self._fd: int | None = None
        self._samples_fd: int | None = None
        self._lock: _Lock | None = None

    @property
    def to_stdout(self) -> bool:
        return self.target == "-"

    def __enter__(self) -> "CsvReport":
        if self.to_stdout:
            self._header(sys.stdout)
            return self
        path = Path(self.target)
        check_target(path, self.append)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _Lock(path, self.wait)
        try:
            check_target(path, self.append)  # a writer that ended while we waited may have made it
            exists = path.exists() and path.stat().st_size > 0
            if exists:
                repair_tail(path, self.say)
                repair_tail(sidecar_path(path), self.say)
                self.columns = _merge_columns(path, self.columns)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if not exists:
                self._put(self._fd, self._line(self.columns))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _header(self, stream) -> None:
        self._stream = stream
        try:
            stream.write(self._line(self.columns).decode())
            stream.flush()
        except BrokenPipeError:
            raise OutputClosed() from None

    def _line(self, cells) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(cells)
        return buffer.getvalue().encode()

    def _put(self, fd: int, data: bytes) -> None:
        _write_whole(fd, data)
        if self.fsync:
            os.fsync(fd)

    def _failed(self, exc: OSError) -> AttnbenchError:
        reason = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file size limit was reached",
                  errno.EDQUOT: "the disk quota is spent"}.get(exc.errno, f"writing failed ({exc.strerror})")
        kept = max(0, len(Path(self.target).read_bytes().splitlines()) - 1)
        return AttnbenchError(f"{reason}: {kept} row(s) kept whole in {self.target}; free space and run again with "
                              f"--resume -o {self.target}")

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"row has columns the report lacks: {', '.join(sorted(unknown))}")
        line = self._line([_cell(row.get(c)) for c in self.columns])
        if self.to_stdout:
            try:
                self._stream.write(line.decode())
                self._stream.flush()
            except BrokenPipeError:
                raise OutputClosed() from None
            return
        groups = getattr(row, "samples", None)
        try:
            if groups:  # the record first: a row is never without its samples
                if self._samples_fd is None:
                    self._samples_fd = os.open(sidecar_path(self.target), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                               0o644)
                identity = {k: v for k, v in row.items() if k in IDENTITY or k.startswith("param_")}
                samples = {SAMPLES_COLUMN: [x for g in groups for x in g],
                           PROCESS_COLUMN: [i for i, g in enumerate(groups) for _ in g]}
                record = (json.dumps({**identity, **samples}) + "\n").encode()
                self._put(self._samples_fd, record)
            try:
                self._put(self._fd, line)
            except OSError:
                if groups:  # take its record back too
                    os.ftruncate(self._samples_fd, os.lseek(self._samples_fd, 0, os.SEEK_END) - len(record))
                raise
        except OSError as exc:
            raise self._failed(exc) from None

    def __exit__(self, *exc: object) -> None:
        for fd in (self._fd, self._samples_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._samples_fd = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


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


def load(path: str | Path, *, complete: bool = False, say=None) -> Report:
    """Read a report: typed rows, each with its samples from the sidecar. An unreadable file is a
    one-line error; with `complete`, so is a report that lacks a column every report has. A last
    row cut mid-write (a writer killed, a full disk) is left out, and `say` (default: stderr) gets
    one line about it."""
    path = Path(path)
    if not path.is_file():
        raise AttnbenchError(f"report {path} does not exist; give the path of a CSV written by 'attnbench run'")
    say = say or (lambda line: print(line, file=sys.stderr))
    try:
        data = path.read_bytes()
        end = _whole_rows_end(data)
        if end and end < len(data):
            say(f"Warning: {path} ends in a row cut mid-write; it is left out (--resume runs its case again)")
            data = data[:end]
        reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
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
