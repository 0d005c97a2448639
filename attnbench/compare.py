"""Compare two reports row by row and decide, per metric, whether NEW regressed against BASE.

Rows are joined on method, parameters, shape and set-up. Policies (thresholds configurable):
- flops, sparsity: deterministic for a fixed seed, so any change counts (more = slower);
- peak memory: within a tight relative and absolute tolerance;
- error (spectral): within a band, relative or absolute, whichever is larger;
- time: statistical. With raw samples (the `.samples.jsonl` sidecar of each report), a
  bootstrap 95% interval of the ratio of medians new/base; without them, the medians and IQRs.
  A difference must clear both a relative and an absolute minimum effect to count; an interval
  that straddles the threshold is 'ambiguous', not a regression.
States per metric: same, faster, slower, ambiguous; rows only in BASE are 'missing', only in
NEW 'new'. A confirmed 'slower' on any metric is a regression.
"""

from __future__ import annotations

import csv
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from attnbench.errors import AttnbenchError
from attnbench.report import read_samples, row_key

COMPARABLE = ("time", "flops", "memory", "sparsity", "error")
HARDWARE = ("cpu_model", "device_name", "gpu_name", "torch_version", "threads", "allocator")


@dataclass(frozen=True)
class Thresholds:
    time_rel: float = 0.05  # a time difference must exceed 5% ...
    time_abs_ms: float = 0.01  # ... and 0.01 ms
    memory_rel: float = 0.02
    memory_abs_bytes: float = 64 * 1024
    error_rel: float = 0.10
    error_abs: float = 1e-6
    confidence: float = 0.95
    resamples: int = 2000


@dataclass
class RowComparison:
    label: str
    states: dict[str, str] = field(default_factory=dict)  # metric -> state
    details: dict[str, str] = field(default_factory=dict)  # metric -> "1.21x [1.15, 1.30]"
    presence: str = "both"  # both, missing (only in BASE), new (only in NEW)

    @property
    def regressed(self) -> bool:
        return "slower" in self.states.values()


@dataclass
class Comparison:
    rows: list[RowComparison]
    hardware_differs: list[str]

    @property
    def regressions(self) -> list[RowComparison]:
        return [r for r in self.rows if r.regressed]

    @property
    def missing(self) -> list[RowComparison]:
        return [r for r in self.rows if r.presence == "missing"]


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        raise AttnbenchError(f"report {path} does not exist; give the CSV written by 'attnbench run' or 'sweep'")
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AttnbenchError(f"cannot read report {path}: {exc}") from None
    if not rows or not {"method", "seq_len", "status"} <= set(rows[0]):
        raise AttnbenchError(f"{path} is not an attnbench report (no rows, or no method/seq_len/status columns)")
    return rows


def _number(row: dict, column: str) -> float | None:
    try:
        return float(row[column])
    except (KeyError, TypeError, ValueError):
        return None


def _label(row: dict) -> str:
    params = " ".join(f"{k[6:]}={v}" for k, v in sorted(row.items()) if k.startswith("param_") and v)
    return " ".join(filter(None, [row["method"], params, f"n={row['seq_len']}", row["mode"]]))


def _exact(base: float | None, new: float | None) -> str | None:
    if base is None or new is None:
        return None
    return "same" if new == base else ("slower" if new > base else "faster")


def _banded(base: float | None, new: float | None, rel: float, absolute: float) -> str | None:
    if base is None or new is None:
        return None
    allowed = max(rel * abs(base), absolute)
    return "same" if abs(new - base) <= allowed else ("slower" if new > base else "faster")


def _bootstrap_ratio(base: list[float], new: list[float], th: Thresholds, rng: random.Random) -> tuple[float, float, float]:
    """Median ratio new/base and its bootstrap confidence interval."""
    ratios = []
    for _ in range(th.resamples):
        b = statistics.median(rng.choices(base, k=len(base)))
        n = statistics.median(rng.choices(new, k=len(new)))
        ratios.append(n / b)
    ratios.sort()
    tail = (1 - th.confidence) / 2
    low, high = ratios[int(tail * len(ratios))], ratios[min(len(ratios) - 1, int((1 - tail) * len(ratios)))]
    return statistics.median(new) / statistics.median(base), low, high


def _time(base: dict, new: dict, base_samples, new_samples, th: Thresholds, rng) -> tuple[str, str] | None:
    mb, mn = _number(base, "time_ms_median"), _number(new, "time_ms_median")
    if mb is None or mn is None or mb <= 0:
        return None
    if abs(mn - mb) <= th.time_abs_ms:
        return "same", f"{mn / mb:.2f}x (within {th.time_abs_ms} ms)"
    if base_samples and new_samples and len(base_samples) > 1 and len(new_samples) > 1:
        ratio, low, high = _bootstrap_ratio(base_samples, new_samples, th, rng)
    else:  # no raw samples: the IQRs as the interval
        ib, inew = _number(base, "time_ms_iqr") or 0, _number(new, "time_ms_iqr") or 0
        ratio, low, high = mn / mb, (mn - inew / 2) / (mb + ib / 2), (mn + inew / 2) / max(mb - ib / 2, 1e-12)
    detail = f"{ratio:.2f}x [{low:.2f}, {high:.2f}]"
    if low > 1 + th.time_rel:
        return "slower", detail
    if high < 1 - th.time_rel:
        return "faster", detail
    if 1 - th.time_rel <= low and high <= 1 + th.time_rel:
        return "same", detail
    return "ambiguous", detail


def compare_reports(base_path: str | Path, new_path: str | Path, metrics=COMPARABLE,
                    thresholds: Thresholds = Thresholds(), seed: int = 0) -> Comparison:
    """Join BASE and NEW on their row keys and judge every metric in `metrics`."""
    base_rows, new_rows = _load(Path(base_path)), _load(Path(new_path))
    base_samples, new_samples = read_samples(base_path), read_samples(new_path)
    base_by_key = {row_key(r): r for r in base_rows if r["status"] != "max_seq"}
    new_by_key = {row_key(r): r for r in new_rows if r["status"] != "max_seq"}
    rng = random.Random(seed)
    out = []
    for key in list(base_by_key) + [k for k in new_by_key if k not in base_by_key]:
        base, new = base_by_key.get(key), new_by_key.get(key)
        result = RowComparison(_label(base or new))
        if new is None or base is None:
            result.presence = "missing" if new is None else "new"
            out.append(result)
            continue
        if base["status"] != new["status"]:
            result.states["status"] = "slower" if base["status"] == "ok" else "faster"
            result.details["status"] = f"{base['status']} -> {new['status']}"
            out.append(result)
            continue
        judged = {
            "flops": lambda: _exact(_number(base, "flops"), _number(new, "flops")),
            "sparsity": lambda: _exact(_number(base, "sparsity"), _number(new, "sparsity")),
            "memory": lambda: _banded(_number(base, "peak_mem_bytes"), _number(new, "peak_mem_bytes"),
                                      thresholds.memory_rel, thresholds.memory_abs_bytes),
            "error": lambda: _banded(_number(base, "error_spectral"), _number(new, "error_spectral"),
                                     thresholds.error_rel, thresholds.error_abs),
        }
        for metric in metrics:
            if metric == "time":
                verdict = _time(base, new, base_samples.get(key), new_samples.get(key), thresholds, rng)
                if verdict:
                    result.states["time"], result.details["time"] = verdict
            elif (state := judged[metric]()) is not None:
                result.states[metric] = state
        out.append(result)
    differs = [c for c in HARDWARE if c in base_rows[0] and c in new_rows[0]
               and {r[c] for r in base_rows} != {r[c] for r in new_rows}]
    return Comparison(out, differs)
