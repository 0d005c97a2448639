r"""What the decoder reports show, as markdown (the findings of docs/decoders.md come from it), and
the packed-vs-padded figure.

    python scenarios/decoders_summary.py --recurrent reports/measured/recurrent-decode.csv \
        --windowed reports/measured/windowed-decode.csv --packed reports/measured/packed-prefill.csv \
        --figure reports/measured/packed-prefill.png > reports/measured/decoders-37.md

Recurrent and windowed decode: per method (and cache), the step's time, FLOPs and cache at every
length, and how far apart its times are (the largest over the smallest, at 8k, 32k and 128k: the
issue's test of O(1) in the cache). Packed prefill: per method and length, the packed sequence
against the padded batch of the same documents (time, FLOPs, peak memory) and their ratios.
"""

from __future__ import annotations

import argparse
import sys

from attnbench.results.report import load

CHECKED = (8192, 32768, 131072)  # the lengths whose times must lie within 1.5x of each other


def _number(value, unit: str = "", scale: float = 1.0) -> str:
    return "-" if value is None else f"{value / scale:.3g}{unit}"


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if row["status"] != "ok":
        return row["status"]
    return _number(row.get("time_ms_median"), " ms")


def decode_lines(path: str, title: str) -> list[str]:
    rows = load(path).rows
    series: dict[str, dict[int, dict]] = {}
    for row in rows:
        name = row["method"] + (f" ({row['cache']} cache)" if row.get("cache") else "")
        series.setdefault(name, {})[row["seq_len"]] = row
    lengths = sorted({row["seq_len"] for row in rows})
    lines = [f"## {title}", "", f"From `{path}`: one decode step's median time per length (a status where it did not "
             "run), then the largest time over the smallest at 8k, 32k and 128k, and at the longest length the step's "
             "FLOPs (counted; the formula's where nothing could count them) and the cache it reads.", "",
             "| method | " + " | ".join(f"n={n // 1024}k" for n in lengths) + " | max/min (8k, 32k, 128k) | FLOPs | "
             "cache |", "|---|" + "---:|" * (len(lengths) + 3)]
    for name, by_length in series.items():
        times = [by_length[n].get("time_ms_median") for n in CHECKED if n in by_length
                 and by_length[n]["status"] == "ok"]
        spread = f"{max(times) / min(times):.2f}x" if len(times) == len(CHECKED) else "-"
        last = by_length[max(by_length)]
        flops = _number(last.get("flops"), " M", 1e6) if last.get("flops") is not None else \
            _number(last.get("flops_analytic"), " M (formula)", 1e6)
        lines.append(f"| {name} | " + " | ".join(_cell(by_length.get(n)) for n in lengths) + f" | {spread} | "
                     f"{flops} | {_number(last.get('cache_bytes'), ' MiB', 2**20)} |")
    return lines + [""]


def packed_pairs(path: str) -> dict[str, dict[int, dict[str, dict]]]:
    """method -> packed length -> {"packed": row, "padded": row} (tasks 'packed 8k', 'padded 8k')."""
    pairs: dict[str, dict[int, dict[str, dict]]] = {}
    for row in load(path).rows:
        kind, _, size = str(row["task"]).partition(" ")
        length = int(size.removesuffix("k")) * 1024
        pairs.setdefault(row["method"], {}).setdefault(length, {})[kind] = row
    return pairs


def _value(row: dict, column: str):
    """A row's figure; FLOPs fall back to the formula where nothing could count them (flex)."""
    value = row.get(column)
    return row.get("flops_analytic") if value is None and column == "flops" else value


def _ratio(padded: dict, packed: dict, column: str) -> str:
    a, b = _value(padded, column), _value(packed, column)
    if padded["status"] != "ok" or packed["status"] != "ok" or not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def packed_lines(path: str) -> list[str]:
    lines = ["## Packed prefill against the padded batch", "", f"From `{path}`: each packed sequence (batch 1) "
             "against the padded batch of the same documents (one row each, padded to the longest). Ratios are "
             "padded over packed: above 1, packing wins. FlexAttention's FLOPs are its formula's (its tiles).", "",
             "| method | n | documents | padded batch x length | packed time | padded time | time | FLOPs | "
             "peak memory |", "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for method, by_length in packed_pairs(path).items():
        for length, pair in sorted(by_length.items()):
            packed, padded = pair.get("packed"), pair.get("padded")
            if packed is None or padded is None:
                continue
            lines.append(f"| {method} | {length // 1024}k | {packed.get('documents')} | {padded['batch']} x "
                         f"{padded['seq_len']} | {_cell(packed)} | {_cell(padded)} | "
                         f"{_ratio(padded, packed, 'time_ms_median')} | {_ratio(padded, packed, 'flops')} | "
                         f"{_ratio(padded, packed, 'peak_mem_bytes')} |")
    return lines + [""]


def packed_figure(path: str, out: str) -> None:
    """Padded over packed (time, FLOPs, peak memory) against n, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True)
    for method, by_length in packed_pairs(path).items():
        for ax, column in zip(axes, ("time_ms_median", "flops", "peak_mem_bytes")):
            points = [(n, _value(pair["padded"], column) / _value(pair["packed"], column))
                      for n, pair in sorted(by_length.items()) if {"packed", "padded"} <= set(pair) and
                      all(pair[k]["status"] == "ok" and _value(pair[k], column) for k in ("packed", "padded"))]
            if points:
                ax.plot(*zip(*points), marker="o", label=method)
    for ax, what in zip(axes, ("time", "FLOPs", "peak memory")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.axhline(1, color="grey", linewidth=0.8)
        ax.set_xlabel("packed length n (documents of about 1k tokens)")
        ax.set_title(f"{what}: padded / packed")
    axes[0].legend()
    fig.suptitle("Packed documents against the padded batch of the same documents (above 1: packing wins)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recurrent")
    parser.add_argument("--windowed")
    parser.add_argument("--packed")
    parser.add_argument("--figure", help="where to draw the packed-vs-padded figure (PNG)")
    args = parser.parse_args(argv)
    lines = ["# Decoder shapes: what the reports show", ""]
    if args.recurrent:
        lines += decode_lines(args.recurrent, "Recurrent decode against the KV-cache rebuild")
    if args.windowed:
        lines += decode_lines(args.windowed, "Decode under a sliding window with sinks")
    if args.packed:
        lines += packed_lines(args.packed)
        if args.figure:
            packed_figure(args.packed, args.figure)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
