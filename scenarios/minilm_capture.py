"""MiniLM, captured: every method on the q, k, v a real model's layers received, and swapped in.

1. `attnbench capture minilm`: all-MiniLM-L6-v2 (the `pretrained` extra's weights) over the bundled
   English passage at its 512 positions; the file goes to reports/captures/ (not committed).
2. Every method (`-m '*'`) on each of the six captured layers, error against the model's own
   attention output and against `full`; and the same methods on random Gaussian q, k, v of the
   same shape (12 heads of 32, n = 512), to see whether the ranking on random inputs holds.
3. `attnbench swap minilm` with each method that ran: the final hidden states' error against the
   unmodified model, and the whole forward's time (three processes per method) and peak memory.

Writes PREFIX.csv (steps 2), PREFIX-swap.csv (3), PREFIX-error.png (error per layer per method)
and PREFIX.md (the ranking on random against real inputs, and the swap), PREFIX defaulting to
reports/measured/minilm-capture. Usage: python scenarios/minilm_capture.py [--out PREFIX]
[--again: redraw the figure and summary from the two reports]. About 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from attnbench.execute.engine import run_cases
from attnbench.hf.capture import capture, write
from attnbench.hf.swap import swap_cases
from attnbench.plan.case import MeasureOptions, make_cases
from attnbench.plan.sources import read_header

CAPTURE = Path("reports/captures/minilm.safetensors")
EXACT = 1e-5  # an error below this on every layer is float32 rounding (or 0: the model's own kernel)
PROCESSES = 3  # the swap's forward timed in this many processes per method (one process can be 1.5x off)


def _capture() -> str:
    if not CAPTURE.is_file():
        CAPTURE.parent.mkdir(parents=True, exist_ok=True)
        write(capture("minilm"), CAPTURE)
    read_header(CAPTURE)  # a damaged file fails here, in one line
    return f"capture:{CAPTURE}"


def _ranks(values: dict[str, float]) -> dict[str, int]:
    return {name: rank for rank, name in enumerate(sorted(values, key=values.get), 1)}


def _number(value) -> str:
    return "" if value is None else f"{value:.2f}"


def _spearman(a: dict[str, int], b: dict[str, int]) -> float:
    names = sorted(a)
    n = len(names)
    return 1 - 6 * sum((a[m] - b[m]) ** 2 for m in names) / (n * (n * n - 1))


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = [r for r in rows if r["status"] == "ok" and r["inputs"].startswith("capture:")]
    random = {r["method"]: r["error_spectral"] for r in rows if r["status"] == "ok" and r["inputs"] == "random"}
    worst = {m: max(r["error_model_spectral"] for r in real if r["method"] == m) for m in {r["method"] for r in real}}
    exact = sorted(m for m, e in worst.items() if e < EXACT)  # float32 rounding, or the model's own kernel (0)
    methods = sorted((m for m in worst if m not in exact), key=lambda m: statistics.mean(
        r["error_model_spectral"] for r in real if r["method"] == m))
    fig, ax = plt.subplots(figsize=(11, 6.5))
    cmap = plt.get_cmap("tab20")
    for i, method in enumerate(methods):
        mine = sorted((r["layer"], r["error_model_spectral"]) for r in real if r["method"] == method)
        line, = ax.plot([x for x, _ in mine], [y for _, y in mine], marker="os^D"[i % 4], color=cmap(i % 20),
                        label=method)
        if method in random:
            ax.plot([6.2], [random[method]], marker="x", markersize=8, color=line.get_color())
    ax.set_yscale("log")
    ax.set_xticks([0, 1, 2, 3, 4, 5, 6.2], ["0", "1", "2", "3", "4", "5", "random\nq, k, v"])
    ax.set_xlabel("MiniLM layer (captured q, k, v; x: random Gaussian inputs of the same shape)")
    ax.set_ylabel("relative spectral error of the output vs the model's own")
    ax.set_title("all-MiniLM-L6-v2, 512 tokens of English: each method on each layer's captured attention call\n"
                 f"not drawn, error below {EXACT:g} on every layer: {', '.join(exact)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(rows: list[dict], swapped: list[dict]) -> list[str]:
    real: dict[str, list[float]] = {}
    for r in rows:
        if r["status"] == "ok" and r["inputs"].startswith("capture:"):
            real.setdefault(r["method"], []).append(r["error_model_spectral"])
    random = {r["method"]: r["error_spectral"] for r in rows if r["status"] == "ok" and r["inputs"] == "random"}
    both = sorted(set(real) & set(random))
    mean_real = {m: statistics.mean(real[m]) for m in both}
    rank_real, rank_random = _ranks(mean_real), _ranks({m: random[m] for m in both})
    # among the approximations only: the exact methods' order is float32 rounding
    approximate = [m for m in both if max(real[m]) >= EXACT]
    rho = _spearman(_ranks({m: mean_real[m] for m in approximate}), _ranks({m: random[m] for m in approximate}))
    check = max(r["error_capture_check"] for r in rows if r.get("error_capture_check") is not None)
    swap = {r["method"]: r for r in swapped}
    base = swap.get("full", {}).get("time_ms_median")
    lines = ["# MiniLM, captured: methods on real attention calls, and swapped into the model", "",
             "`python scenarios/minilm_capture.py` (all-MiniLM-L6-v2, 512 tokens of the bundled English passage, "
             "float32, CPU). Exact attention on the captured q, k, v is at most "
             f"{check:.2g} from the model's own output on every layer (the capture saw what the model attends with).",
             "", f"Spearman correlation of the error ranking, random against real inputs: {rho:.2f} over the "
             f"{len(approximate)} approximate methods (the {len(both) - len(approximate)} exact ones are within "
             f"float32 rounding, below {EXACT:g}, and their order is noise).", "",
             "| method | error, random q, k, v | error, real (mean of 6 layers) | min..max over layers | rank random | "
             "rank real | swapped into all 6 layers: hidden-state error | forward time vs full | process spread |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in sorted(both, key=rank_real.get):
        row = swap.get(m, {})
        hidden = row.get("swap_hidden_error")
        ratio = row.get("time_ms_median") / base if base and row.get("time_ms_median") else None
        lines.append(f"| {m} | {random[m]:.3g} | {mean_real[m]:.3g} | {min(real[m]):.3g}..{max(real[m]):.3g} | "
                     f"{rank_random[m]} | {rank_real[m]} | {'' if hidden is None else f'{hidden:.3g}'} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} | {_number(row.get('time_process_spread'))} |")
    refused = sorted({(r["method"], r["status_detail"]) for r in rows if r["status"] != "ok"})
    if refused:
        lines += ["", "Not run on the capture:", ""] + [f"- {m}: {why}" for m, why in refused]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="reports/measured/minilm-capture", help="prefix of the files written")
    parser.add_argument("--again", action="store_true", help="redraw the figure and the summary from the reports "
                        "already there (PREFIX.csv, PREFIX-swap.csv), measuring nothing")
    args = parser.parse_args()
    prefix = Path(args.out)
    targets = [prefix.with_name(prefix.name + suffix) for suffix in (".csv", "-swap.csv", "-error.png", ".md")]
    if args.again:
        from attnbench.results.report import load

        rows, swapped = load(targets[0]).rows, load(targets[1]).rows
        figure(rows, targets[2])
        targets[3].write_text("\n".join(summary(rows, swapped)) + "\n")
        print(f"wrote {targets[2]} and {targets[3]}")
        return
    taken = [str(t) for t in targets if t.exists()]
    if taken:
        raise SystemExit(f"{', '.join(taken)} exist: remove them or give another --out")
    inputs = _capture()
    cases = make_cases(["*"], [], inputs=inputs, layer="all") + \
        make_cases(["*"], [512], inputs="random", heads=12, head_dim=32)
    rows = run_cases(cases, MeasureOptions(metrics=("error",)), output=targets[0]).rows
    ran = sorted({r["method"] for r in rows if r["status"] == "ok" and r["inputs"] == inputs})
    swapped = run_cases(swap_cases("minilm", ran), MeasureOptions(metrics=("memory", "time", "swap"),
                                                                  min_time_s=0.3, max_time_s=2.0,
                                                                  processes=PROCESSES),
                        output=targets[1]).rows
    figure(rows, targets[2])
    targets[3].write_text("\n".join(summary(rows, swapped)) + "\n")
    for target in targets:
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
