"""The commands for your own model: `capture` (record its attention calls to a file) and `swap`
(run it with a method in place of its attention). Thin: attnbench.hf.capture and attnbench.hf.swap do
the work; attnbench.hf.seam is the seam into transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnbench.cli.shared import ParamOpt, _flag, measure_and_show
from attnbench.errors import AttnbenchError
from attnbench.plan.values import parse_names, parse_param, parse_size

ModelArg = Annotated[str, typer.Argument(
    help="A local Hugging Face model folder (config.json and weights), a config.json alone (seeded random weights), "
         "or minilm (all-MiniLM-L6-v2 from the pretrained extra). Nothing is downloaded.")]
TextOpt = Annotated[Optional[Path], typer.Option(
    "--text", help="A text file to run the model on (cut to --seq tokens, or to the model's positions). "
                   "[default: a bundled English passage; with --seq alone: seeded random token ids]")]
SeqOpt = Annotated[Optional[str], typer.Option(
    "--seq", "-n", help="Tokens: with --text, the text cut to N tokens; alone, N seeded random token ids.")]
LayersOpt = Annotated[Optional[str], typer.Option(
    "--layers", help="Layers to keep (capture) or to swap, comma separated, e.g. 0,5,11. [default: all]")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds random token ids, random weights and the method's draws.")]


def _seq(text: str | None) -> int | None:
    return None if text is None else parse_size(text, "--seq")


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def capture_command(
    model: ModelArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The capture file to write (safetensors).")],
    text: TextOpt = None,
    seq: SeqOpt = None,
    layers: LayersOpt = None,
    seed: SeedOpt = 0,
    force: Annotated[bool, _flag("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Record a model's attention calls to a file: q, k, v, mask, shapes and its own output.

    MODEL runs once; for every attention call (one per layer) the file keeps the q, k, v its
    attention function received (after RoPE and projections), the mask kind, the shapes, and the
    model's own attention output.

    Hooks transformers' AttentionInterface, so it covers the models that dispatch through it
    (BERT, Llama, Mistral, Qwen2, Gemma, ...). Benchmark every method on the capture with
    [bold]attnbench run --inputs capture:FILE -m '*'[/bold].

    Example: [bold]attnbench capture minilm -o minilm.safetensors[/bold]
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from attnbench.hf.capture import capture, write
    from attnbench.results.report import refuse_to_replace
    from attnbench.views.render import console

    if not force:
        refuse_to_replace([output], "choose another -o, or pass --force to replace it")
    if not output.parent.is_dir():
        raise AttnbenchError(f"the folder of {output} does not exist; create it or choose another -o")
    screen = console(stderr=True)
    with Progress(TextColumn("capturing {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=screen, transient=True) as progress:
        task = progress.add_task(model, total=None)
        captured = capture(model, text=None if text is None else str(text), seq=_seq(seq), layers=layers, seed=seed,
                           on_layer=lambda done, total: progress.update(task, completed=done, total=total))
    import json

    records = json.loads(captured.metadata["layers"])
    first = records[0]
    kv = f" over {first['kv_heads']} kv heads" if first["kv_heads"] != first["heads"] else ""
    screen.print(f"writing {_megabytes(captured.nbytes)} to {output}: {len(records)} layer(s) of {first['heads']} "
                 f"heads{kv} x {first['head_dim']}, {captured.metadata['tokens']}, "
                 f"{first['mask'] or first['unsupported']} attention", markup=False, highlight=False)
    write(captured, output)
    typer.echo(f"wrote {output}")


def swap_command(
    model: ModelArg,
    method: Annotated[str, typer.Option("--method", "-m", help="Method name(s), comma separated; wildcards allowed.")],
    param: ParamOpt = None,
    text: TextOpt = None,
    seq: SeqOpt = None,
    layers: LayersOpt = None,
    seed: SeedOpt = 0,
    metrics: Annotated[Optional[str], typer.Option(
        "--metrics", help="Passes, comma separated: swap (hidden-state error, next-token KL, perplexity), flops, "
                          "memory, time. [default: flops,memory,time,swap]")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N. [default: cpu]")] = None,
    dtype: Annotated[Optional[str], typer.Option(
        "--dtype", help="The model's and the method's dtype. [default: float32 on CPU, bfloat16 on CUDA]")] = None,
    min_time: Annotated[Optional[float], typer.Option("--min-time", min=0.0, help="Seconds of timing at least.")]
    = None,
    max_time: Annotated[Optional[float], typer.Option("--max-time", min=0.0, help="Seconds of timing at most.")]
    = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="CSV report path. [default: reports/swap-<time>.csv]")] = None,
    append: Annotated[bool, _flag("--append", help="Add rows to an existing report.")] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q", help="Plain progress lines, no progress bar.")] = False,
) -> None:
    """Put a method in place of a model's attention and measure what it changes and costs.

    MODEL runs end to end with its attention replaced by each METHOD (in every layer, or
    --layers), against the unmodified model on the same tokens: the final hidden states' relative
    error, for a language model the next-token KL and the perplexity, and the whole forward's
    FLOPs, peak memory and time. One row per method and parameter set, as 'run' writes them.

    A method that cannot take the model's shape (causal, grouped kv heads) is an 'unsupported'
    row with the reason.

    Example: [bold]attnbench swap minilm -m full,linear,performer -o swap.csv[/bold]
    """
    from attnbench.execute.launchers import make_launcher
    from attnbench.hf.swap import DEFAULT_METRICS, swap_cases
    from attnbench.metrics import chosen, parse_metrics
    from attnbench.plan.case import MeasureOptions
    from attnbench.plan.scopes import SWAP
    from attnbench.results.report import check_target

    names = parse_metrics(parse_names(metrics)) if metrics else DEFAULT_METRICS
    for metric in chosen(names):
        if metric.scopes and SWAP not in metric.scopes:
            raise AttnbenchError(f"--metrics {metric.name} measures at --scope {', '.join(metric.scopes)}; swap "
                                 "takes swap, flops, memory and time")
    check_target(output, append)
    params = dict(parse_param(p) for p in param or [])
    cases = swap_cases(model, parse_names(method), params, text=None if text is None else str(text), seq=_seq(seq),
                       layers=layers, seed=seed, device=device, dtype=dtype)
    budget = {k: v for k, v in (("min_time_s", min_time), ("max_time_s", max_time)) if v is not None}
    measure_and_show(cases, MeasureOptions(metrics=names, **budget), make_launcher(), output, "swap",
                     {"append": append, "quiet": quiet})
