"""A case is one measurement: a method with fixed parameters on one input shape and set-up.

The defaults of every set-up value live here, on `Case`, and nowhere else: the command line and
scenario files pass only what the user gave (None means "the default"). How a case is measured
(`MeasureOptions`) and what it may use in a worker (`Limits`) sit beside it.

A Case is hashable and is the identity of a report's row: `Case.of(row)` rebuilds it from a row's
identity columns (a column an older report lacks takes Case's default), so rows are joined,
resumed and labelled by the case they measured.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

from attnbench.errors import AttnbenchError
from attnbench.methods.contract import Method, Shape
from attnbench.methods.registry import check_names, create_method, get_method, list_methods
from attnbench.metrics import default_metrics
from attnbench.plan.decoding import check_masks, document_fields
from attnbench.plan.scopes import MODEL_HEAD_DIM, MODEL_HEADS, SCOPES, ModelShape
from attnbench.plan.training import check_lengths, check_training
from attnbench.plan.values import COMPILE_MODES, parse_amp, parse_dtype, parse_mode, whole


@dataclass(frozen=True)
class Case:
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)  # every parameter, defaults included
    batch: int = 1
    heads: int = 4
    seq_len: int = 1024
    head_dim: int = 64
    kv_heads: int | None = None  # key/value heads (grouped-query attention); None: one per query head
    q_seq_len: int | None = None  # queries, the last of seq_len positions (decoding); None: seq_len
    causal: bool = False  # each query attends only the keys at or before its position
    window: int | None = None  # a sliding window: the keys within W positions (causal: the W up to the query)
    sinks: int = 0  # with a window: the first S keys of each document stay visible (attention sinks)
    documents: int | None = None  # packed documents in the sequence (a block-diagonal mask); None: one
    doc_lengths: str | None = None  # their lengths, "l1+l2+..." (drawn from the seed unless given)
    softcap: float | None = None  # logit soft-capping: scores s become tanh(s / C) * C
    cache: str = "kv"  # a decode step (q_seq_len) reads the cached keys (kv) or a recurrent state (state)
    dtype: str = "float32"
    device: str = "cpu"
    mode: str = "forward"  # "backward": forward + backward; "train": an optimizer step (layer, model scope)
    # attention (the bare op), layer (an encoder layer), model (the LRA encoder), or swap (a Hugging
    # Face model with the method in place of its attention: attnbench swap)
    scope: str = "attention"
    layers: int | None = None  # layer/model scope: encoder layers (None at attention scope)
    ffn_dim: int | None = None  # layer/model scope: FFN hidden width
    vocab: int | None = None  # model scope: token vocabulary
    task: str = ""  # a scenario's task label (e.g. the LRA task a length stands for)
    train_task: str | None = None  # model scope: the generated task the model's data comes from (attnbench.tasks)
    pairs: int | None = None  # MQAR: key-value pairs per example (None: not MQAR)
    seed: int = 0
    threads: int | None = None  # CPU threads; None: torch's default, resolved by make_cases
    inputs: str = "random"  # random, pretrained or init (attnbench.execute.inputs)
    input_scale: float = 1.0  # random inputs: standard deviation
    layer: int = 2  # pretrained/init/capture inputs: the model layer whose q, k, v are taken
    model: str | None = None  # capture inputs and swap scope: the Hugging Face model (MODEL as given)
    capture: str | None = None  # capture inputs: the SHA-256 of the capture file (16 hex digits)
    swap_layers: str | None = None  # swap scope: the layers whose attention the method replaces ("all", "0,5")
    revision: str | None = None  # attnbench ab: the side (revision or environment) of the code under test
    compile: str = "off"  # off, or the torch.compile mode the method's function is compiled with
    amp: str = "off"  # layer/model scope: autocast dtype over float32 weights (bfloat16, float16), or off
    # attnbench profile: the stage of the method a row's figures are for ("" the whole call); a label
    # of rows, like task and revision, never a setting of a measurement
    stage: str = ""

    def __hash__(self) -> int:  # params is a mapping: hashed by its items
        return hash(tuple(frozenset(self.params.items()) if f.name == "params" else getattr(self, f.name)
                          for f in fields(self)))

    @property
    def shape(self) -> Shape:
        lengths = None if self.doc_lengths is None else tuple(int(n) for n in self.doc_lengths.split("+"))
        return Shape(self.batch, self.heads, self.seq_len, self.head_dim, self.kv_heads, self.q_seq_len, self.causal,
                     self.window, self.sinks, lengths, self.softcap, self.cache)

    def instance(self) -> Method:
        return create_method(self.method, **self.params)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "Case":
        """The case a (typed) row measured: its method, param_<name> columns and set-up; a column the
        row lacks, or leaves blank where the field has a value by default, takes Case's default."""
        params = {k.removeprefix("param_"): v for k, v in row.items() if k.startswith("param_") and v is not None}
        setup = {}
        for name in SETUP:
            value = row.get(name)
            if value is not None or DEFAULTS[name] is None:
                setup[name] = value
        return cls(str(row["method"]), params, seq_len=row["seq_len"], **setup)


@dataclass(frozen=True)
class Limits:
    """What a case may use when it runs in a worker (attnbench sweep)."""

    max_memory_bytes: int | None = 3 * 2**30  # added to the warmed-up worker's address space
    timeout_s: float | None = 300.0  # None: no limit


@dataclass(frozen=True)
class MeasureOptions:
    """How to measure: which metrics' passes run, and their budgets and references."""

    metrics: tuple[str, ...] = field(default_factory=default_metrics)
    min_time_s: float = 0.5  # timing runs at least this long, then stops once IQR/median < 10%
    max_time_s: float = 5.0  # ... or when this much time was spent measuring
    warmup_s: float = 0.1  # untimed calls before timing: at least 3, and at least this long
    reference: str = "full"  # error metric: the exact attention outputs are compared with
    repeats: int = 1  # error metric: independent draws of a stochastic method
    l2: str = "cold"  # time on CUDA: flush the L2 cache before every timed call (cold) or not (warm)
    cuda_graphs: bool = False  # time on CUDA: capture the call in a CUDA graph and time its replays
    short_calls: str = "batch"  # time on CUDA: a call under 100 us as a batch of calls (batch) or alone (each)
    processes: int = 1  # per-process metrics (time) are measured in this many separate processes, interleaved
    process_index: int = 0  # set by the engine: which of those processes this is (0 runs every pass)
    settings: tuple[tuple[str, Any], ...] = ()  # the metrics' own options (Metric.options), as given

    def setting(self, key: str, default: Any = None) -> Any:
        """A metric's own option (target "metric" in the option spec), or `default` when not given."""
        return dict(self.settings).get(key, default)

    def check_concurrency(self, concurrency: int, find_max_seq: bool = False) -> None:
        """Cases run at once only when every chosen metric is deterministic, and not while probing
        lengths one after another (--find-max-seq)."""
        if concurrency <= 1:
            return
        from attnbench.metrics import all_metrics, chosen

        disturbed = [m.name for m in chosen(self.metrics) if not m.deterministic]
        if disturbed:
            calm = ", ".join(m.name for m in all_metrics() if m.deterministic)
            raise AttnbenchError(f"--jobs runs cases at the same time, which would disturb their timings: take "
                                 f"{', '.join(disturbed)} out of --metrics ({calm} are deterministic) or use --jobs 1")
        if find_max_seq:
            raise AttnbenchError("--jobs is for sweeps of a grid: --find-max-seq probes one length after another")


SETUP = tuple(f.name for f in fields(Case) if f.name not in ("method", "params", "seq_len"))
DEFAULTS = {f.name: f.default for f in fields(Case) if f.name in SETUP}
# The dtype of a CUDA case unless one is given: float32 on a GPU runs other kernels (TF32 or
# none) than the ones users ship. Case.dtype (float32) stays the CPU's, and --amp's weights'.
CUDA_DTYPE = "bfloat16"


def check_device(device: str, here: bool = True) -> str:
    """'cpu', 'cuda' or 'cuda:N', that exists on this machine unless `here` is False (a Ray sweep:
    its tasks check on their nodes); anything else is a one-line error."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise AttnbenchError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not here:
            return str(dev)
        if not torch.cuda.is_available():
            raise AttnbenchError(f"--device {device}: no CUDA device is visible here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AttnbenchError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise AttnbenchError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return str(dev)


def expand_methods(names: Iterable[str]) -> list[str]:
    """Method names with shell-style wildcards expanded ('*' = every known method), each once;
    unknown names fail here, before any method (or torch) is imported."""
    out: list[str] = []
    for name in names:
        if any(ch in name for ch in "*?[") and ":" not in name:
            matched = list_methods(name)
            if not matched:
                raise AttnbenchError(f"no method matches {name!r}; run 'attnbench list' to see all methods")
            out += matched
        else:
            check_names([name])
            out.append(name)
    return list(dict.fromkeys(out))


def _param_grids(methods: Sequence[str], params: Mapping[str, Sequence[Any]]) -> dict[str, list[dict]]:
    """Per method, the cartesian product of the grids it declares (the rest do not apply to it)."""
    declared = {m: {p.name for p in get_method(m).params()} for m in methods}
    for name in params:
        if not any(name in d for d in declared.values()):
            valid = ", ".join(sorted(set().union(*declared.values()))) or "none"
            raise AttnbenchError(f"no selected method has a parameter {name!r}; their parameters: {valid}")
    grids = {}
    for m in methods:
        mine = {k: list(v) for k, v in params.items() if k in declared[m]}
        grids[m] = [dict(zip(mine, combo)) for combo in itertools.product(*mine.values())]
    return grids


def _check_setup(setup: dict, devices_here: bool = True) -> dict:
    """Validated set-up values, canonical (dtype names, device, threads resolved)."""
    import torch

    for what in ("batch", "heads", "head_dim"):
        value = setup[what]
        if not whole(value):
            raise AttnbenchError(f"{what} must be a positive whole number, not {value!r}")
    kv_heads = setup["kv_heads"]
    if kv_heads is not None:
        if not whole(kv_heads):
            raise AttnbenchError(f"kv_heads must be a positive whole number, not {kv_heads!r}")
        if setup["heads"] % kv_heads:
            divisors = ", ".join(str(d) for d in range(1, setup["heads"] + 1) if setup["heads"] % d == 0)
            raise AttnbenchError(f"--kv-heads {kv_heads} does not divide --heads {setup['heads']}: each key/value "
                                 f"head serves a whole group of query heads; use one of {divisors}")
        if kv_heads != setup["heads"] and setup["inputs"] in ("pretrained", "init"):
            raise AttnbenchError(f"--inputs {setup['inputs']} gives MiniLM's q, k, v, one key head per query head: "
                                 "leave --kv-heads out, or use --inputs random")
    q_seq = setup["q_seq_len"]
    if q_seq is not None and not whole(q_seq):
        raise AttnbenchError(f"q_seq must be a positive whole number, not {q_seq!r}")
    if not isinstance(setup["causal"], bool):
        raise AttnbenchError(f"causal must be true or false, not {setup['causal']!r}")
    check_masks(setup)
    setup = check_training(setup)
    from attnbench.plan.sources import check_source
    from attnbench.plan.values import parse_inputs

    parse_inputs(setup["inputs"])
    check_source(setup["inputs"], setup["heads"], setup["head_dim"], setup["layer"])
    if not setup["input_scale"] > 0:
        raise AttnbenchError(f"--input-scale must be positive, not {setup['input_scale']!r}")
    setup = {**setup, "amp": parse_amp(setup["amp"])}
    if setup["amp"] != "off" and setup["dtype"] != "float32":
        raise AttnbenchError(f"--amp {setup['amp']} keeps float32 master weights: leave --dtype out or give float32, "
                             f"not {setup['dtype']}")
    if setup["compile"] not in COMPILE_MODES:
        raise AttnbenchError(f"--compile-mode must be one of {', '.join(COMPILE_MODES[1:])}, not {setup['compile']!r}")
    return {**setup, "dtype": parse_dtype(setup["dtype"]), "device": check_device(setup["device"], devices_here),
            "mode": parse_mode(setup["mode"]), "input_scale": float(setup["input_scale"]),
            "softcap": None if setup["softcap"] is None else float(setup["softcap"]),
            "threads": setup["threads"] or torch.get_num_threads(), **_check_scope(setup)}


def _check_scope(setup: dict) -> dict:
    """Scope, mode and the model's shape must fit together; returns the model fields as recorded."""
    scope, mode = setup["scope"], setup["mode"]
    if scope not in SCOPES:
        raise AttnbenchError(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    given = {k: setup[k] for k in ("layers", "ffn_dim", "vocab") if setup[k] is not None}
    if scope == "attention" and setup["amp"] != "off":
        raise AttnbenchError("--amp is mixed precision over a network's float32 weights: add --scope layer or "
                             "--scope model (at attention scope --dtype is the inputs' precision)")
    if scope == "attention":
        if mode == "train":
            raise AttnbenchError("--mode train needs a model to train: add --scope layer or --scope model")
        if given:
            raise AttnbenchError(f"--{'/--'.join(k.replace('_', '-') for k in given)} describe a layer or model: "
                                 "add --scope layer or --scope model")
        return {}
    if setup["q_seq_len"] is not None:
        raise AttnbenchError(f"--q-seq is a query block against a KV cache: at --scope {scope} the layer attends "
                             "its own sequence; use --scope attention for decoding shapes")
    if setup["inputs"] != "random":
        raise AttnbenchError(f"--inputs {setup['inputs']} gives q, k, v, but at --scope {scope} they come from the "
                             "layer's own projections of its input; use --scope attention for real q, k, v")
    for name, value in given.items():
        if not whole(value):
            raise AttnbenchError(f"--{name.replace('_', '-')} must be a positive whole number, not {value!r}")
    if scope == "layer" and (given.get("layers", 1) != 1 or "vocab" in given):
        raise AttnbenchError("--scope layer is one layer on real-valued inputs: --layers and --vocab are for "
                             "--scope model")
    shape = ModelShape(**given)
    return {"layers": 1 if scope == "layer" else shape.layers, "ffn_dim": shape.ffn(setup["heads"] * setup["head_dim"]),
            "vocab": shape.vocab if scope == "model" else None}


def make_cases(methods: Iterable[str], seq_lens: Iterable[int], params: Mapping[str, Sequence[Any]] | None = None,
               *, devices_here: bool = True, **setup: Any) -> list[Case]:
    """Validated cartesian product of methods x parameter grids x sequence lengths.

    `setup` takes any field of Case (batch, heads, head_dim, dtype, device, mode, seed, threads,
    inputs, input_scale, layer); a value left out or None keeps Case's default. The device must
    exist on this machine unless `devices_here` is False (cases that run elsewhere, on Ray).
    """
    unknown = set(setup) - set(SETUP)
    if unknown:
        raise AttnbenchError(f"unknown set-up {', '.join(sorted(unknown))}; valid: {', '.join(SETUP)}")
    methods, seq_lens = expand_methods(methods), list(seq_lens)
    if not methods:
        raise AttnbenchError("give at least one method")
    for n in seq_lens:
        if not whole(n):
            raise AttnbenchError(f"seq must be a positive whole number, not {n!r}")
    given = {k: v for k, v in setup.items() if v is not None}
    if given.get("scope") == "model":  # the LRA configuration unless heads/head_dim are given
        given = {"heads": MODEL_HEADS, "head_dim": MODEL_HEAD_DIM, **given}
    if given.get("dtype") is None and parse_amp(str(given.get("amp", "off"))) == "off" and \
            str(given.get("device", DEFAULTS["device"])).startswith("cuda"):
        given["dtype"] = CUDA_DTYPE
    grids = _param_grids(methods, params or {})
    cases = []
    for variant, lengths in _layer_variants(given, seq_lens):
        common = _check_setup({**DEFAULTS, **variant}, devices_here)
        if common["kv_heads"] == common["heads"]:  # one key head per query head: today's cases, one identity
            common["kv_heads"] = None
        q_seq, documents = common.pop("q_seq_len"), common.pop("documents")
        common.pop("doc_lengths")
        if common["cache"] == "state" and any(_queries(q_seq, n) is None for n in lengths):
            raise AttnbenchError("--cache state decodes from the state of the keys before the query block: add "
                                 "--q-seq shorter than --seq")
        check_lengths(common, lengths)
        for method, grid in grids.items():
            for chosen in grid:
                instance = create_method(method, **chosen)  # validates names, types and ranges
                full_params = {p.name: getattr(instance, p.name) for p in instance.params()}
                cases += [Case(method, full_params, seq_len=n, q_seq_len=_queries(q_seq, n),
                               **document_fields(documents, n, common["seed"]), **common) for n in lengths]
    return cases


# a capture fixes these
CAPTURED = ("batch", "heads", "head_dim", "kv_heads", "q_seq_len", "causal", "window", "softcap")


def _layer_variants(given: dict, seq_lens: list[int]) -> list[tuple[dict, list[int]]]:
    """(set-up, lengths) per model layer: `layer = "all"` is every layer of pretrained/init inputs
    or of a capture; capture inputs take their shape (heads, kv heads, causal, length) from the
    capture's record of each layer, and refuse set-up that contradicts it."""
    from attnbench.plan.sources import capture_path, read_header

    layer, path = given.get("layer"), capture_path(str(given.get("inputs", "")))
    if path is None:
        if layer == "all":
            from attnbench.plan.sources import MODEL_LAYERS

            if given.get("inputs", DEFAULTS["inputs"]) == "random":
                raise AttnbenchError("--layer all picks the layers of real q, k, v: add --inputs pretrained, init "
                                     "or capture:FILE")
            return [({**given, "layer": i}, seq_lens) for i in range(MODEL_LAYERS)]
        if not seq_lens:
            raise AttnbenchError("give at least one sequence length (--seq)")
        return [(given, seq_lens)]
    header = read_header(path)
    records = header.layers if layer in (None, "all") else [header.layer(layer)]
    variants = []
    for record in records:
        if record.mask is None:
            raise AttnbenchError(f"layer {record.layer} of {path}: {record.unsupported}; attnbench runs captures "
                                 "of full and causal attention (pick another layer with --layer)")
        shape = {"batch": record.batch, "heads": record.heads, "head_dim": record.head_dim,
                 "kv_heads": record.kv_heads, "q_seq_len": record.q_len, "causal": record.mask == "causal",
                 "window": record.window, "softcap": record.softcap}
        for key in CAPTURED:
            if key in given and given[key] != shape[key]:
                raise AttnbenchError(f"{key} = {given[key]} contradicts the capture {path} ({key} = {shape[key]} at "
                                     f"layer {record.layer}): leave it out, the capture fixes the shape")
        if seq_lens and seq_lens != [record.kv_len]:
            raise AttnbenchError(f"the capture {path} holds {record.kv_len} keys per layer: leave --seq out")
        variants.append(({**given, **shape, "layer": record.layer, "capture": header.sha256,
                          "model": header.model}, [record.kv_len]))
    return variants


def _queries(q_seq: int | None, n: int) -> int | None:
    """The case's q_seq_len: None when the queries are the whole sequence (one identity for both)."""
    if q_seq is None or q_seq == n:
        return None
    if q_seq > n:
        raise AttnbenchError(f"--q-seq {q_seq} is more queries than keys at --seq {n} (the queries are the last "
                             f"positions of the sequence): give lengths of at least {q_seq} or a shorter --q-seq")
    return q_seq
