"""What every figure of a report shares: one colour and marker per method, line styles, the
title that states the set-up, and axes that read (lengths as 512, 1k; bytes as MiB; plain tick
numbers; O(n) and O(n^2) guides; lines that lie on each other kept visible)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import pandas as pd  # noqa: E402


def guides(ax, x: pd.Series, y: pd.Series) -> None:
    """O(n) and O(n^2) lines anchored at the smallest n and the median y there."""
    x0, x1 = x.min(), x.max()
    y0 = y[x == x0].median()
    if not (x1 > x0 and y0 > 0):
        return
    for power, style in ((1, ":"), (2, "--")):
        ax.plot([x0, x1], [y0, y0 * (x1 / x0) ** power], style, color="grey", lw=1,
                label=f"O(n{'' if power == 1 else '²'}) guide")


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
STYLES = ("-", "--", ":", "-.")
SETUP = (("batch", "b={}"), ("heads", "h={}"), ("kv_heads", "kv heads={}"), ("head_dim", "d={}"),
         ("q_seq_len", "q_seq={}"), ("causal", "{}"), ("dtype", "{}"), ("device", "{}"),
         ("scope", "{} scope"), ("mode", "{}"))


def method_styles(frame: pd.DataFrame) -> dict[str, dict]:
    """One colour and one marker per method, the same in every figure of a report (methods sorted)."""
    methods = sorted(str(m) for m in frame["method"].dropna().unique()) if "method" in frame else []
    # past ten methods the colours repeat: the marker shifts, so no two methods look alike
    return {m: {"color": f"C{i % 10}", "marker": MARKERS[(i + i // 10) % len(MARKERS)]} for i, m in enumerate(methods)}


def describe(frame: pd.DataFrame) -> str:
    """What the figures show, for their title: shape, dtype, device, scope and mode (a value per
    column, or the values it takes)."""
    parts = []
    for column, spec in SETUP:
        if column in frame:
            values = [f"{v:g}" if isinstance(v, float) else str(v) for v in frame[column].dropna().unique()]
            if column == "causal":  # named when a mask is on; bidirectional rows are today's default
                values = [] if values == ["False"] else ["causal" if v == "True" else "bidirectional" for v in values]
            if values:
                parts.append(spec.format("/".join(sorted(values))))
    return ", ".join(parts)


def length_axis(ax, lengths) -> None:
    """Ticks at the measured lengths, written 512, 1k, 2k, 4k."""
    from matplotlib.ticker import NullLocator

    ticks = sorted({int(n) for n in lengths})
    ax.set_xticks(ticks, [f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n) for n in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def short(value: float) -> str:
    """A tick's number: 0.5, 2, 50, 5000, 200 k, 500 M, 3 G (never 4x10^0)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(value) >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value / 1e3:g} k" if abs(value) >= 1e5 else f"{value:g}"


def value_axis(ax) -> None:
    """Log ticks written as plain numbers, at 1, 2 and 5 of each decade where the panel spans up
    to 3 decades (one length or close methods still read without powers of ten), else at each
    decade. Call it once the panel's data is drawn."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: short(value)))


def coinciding(curves: dict[str, pd.Series]) -> dict[str, tuple[int, int]]:
    """Each series' (place, count) among the series it lies on (the same lengths, values within
    3%: no further apart than a marker on a log axis), in drawing order: equal FLOP counts of
    several methods would otherwise hide all but the last line drawn."""
    groups: list[list[str]] = []
    for name, curve in curves.items():
        for group in groups:
            other = curves[group[0]]
            if curve.index.equals(other.index) and ((curve - other).abs() <= 0.03 * other.abs()).all():
                group.append(name)
                break
        else:
            groups.append([name])
    return {name: (place, len(group)) for group in groups for place, name in enumerate(group)}


def bytes_axis(ax, which: str = "y") -> None:
    """Ticks at powers of 4 bytes, written 1 MiB, 4 MiB, 16 MiB (decades of bytes read badly), on
    the y axis or (`which="x"`) the x axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    from attnbench.metrics.display import fmt_bytes

    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(base=4))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda value, _: fmt_bytes(value).replace(".0 ", " ")))


SIZE_PARAMS = ("features", "landmarks", "proj_dim", "k", "clusters", "density", "sketch_dim", "bucket_size")


def ok_with(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in frame:
        return frame.iloc[0:0]
    return frame[(frame["status"] == "ok") & frame[column].notna()]
