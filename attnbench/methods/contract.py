"""The method contract: what every attention implementation is, and nothing else.

A method is a frozen dataclass whose fields are its parameters (declared with `param`, paper
defaults, validated on construction by the registry) and whose `build` turns a shape into an
attention function `fn(q, k, v) -> out` on (batch, heads, seq_len, head_dim) tensors (a
decoder's shape may have fewer key/value heads, a shorter query block and a causal mask: `Shape`;
`Capabilities` says which of those a method runs, and `make` builds any of them; the shape's
mask options, a window with sinks, packed documents and soft-capping, are attnbench.methods.masks). Random
draws and weights are made in `build`, outside any timed region. Each method also states, for
the report, its analytic FLOPs (a multiply-add counts 2), how many query-key scores it
computes, and the bytes it keeps alive at its peak.

Optional hooks have one signature each and a default that means "nothing to say"; the runner
and `show-pattern` call them on every method:
- `mask(fn, q, k)`: the (batch, heads, n, n) bool mask of query-key pairs `fn` attends
  (one draw for sampled methods), or None for methods without a mask (low-rank, kernel);
- `diagnostics(fn, q, k, v)`: figures of one call that fill the method's `extra_columns`
  ('scores_computed' for methods whose work depends on the data);
- `sampler(fn)`: the generator `fn` draws from on every call, so that repeated calls can be
  made to see one and the same draw (error metrics); None when `fn` draws nothing per call.

A method marks its algorithmic stages inside its call with `with stage("pseudo-inverse"):`, named
in its paper's words and listed in its `stages`; a kernel that is one call is one stage
(`OneStage`). Outside `attnbench profile` (and the FLOP pass, which counts by stage) a stage
costs a check of two globals; under a profiler it is a `torch.profiler.record_function` range.

This module imports nothing of attnbench but `Shape` (and not torch): the registry imports the
methods, never the other way round.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar

from attnbench.methods.shape import Shape  # noqa: F401  (part of the contract)

# The stage recorders in force, innermost last (attnbench.measure.stages): while one is, every
# stage goes through it. Empty outside profiling and FLOP counting.
RECORDERS: list = []


class _Annotate:
    """A stage as a bare profiler range, for a torch.profiler the user started themselves."""

    @staticmethod
    def enter(name: str) -> Any:
        return sys.modules["torch"].profiler.record_function(name).__enter__()

    @staticmethod
    def exit(marker: Any) -> None:
        marker.__exit__(None, None, None)


def _listener() -> Any:
    profiler = sys.modules.get("torch.autograd.profiler")
    return RECORDERS[-1] if RECORDERS else _Annotate if profiler and profiler._is_profiler_enabled else None


class stage:
    """`with stage("landmarks"):` marks the work inside as one stage of the method's algorithm.
    Nested stages are named by their path ("attention/landmarks"). A small class rather than a
    contextmanager generator: a timed call pays a few hundred nanoseconds per stage."""

    __slots__ = ("name", "listener", "token")

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> "stage":
        self.listener = _listener()
        self.token = self.listener.enter(self.name) if self.listener is not None else None
        return self

    def __exit__(self, *exc: object) -> bool:
        if self.listener is not None:
            self.listener.exit(self.token)
        return False


class OneStage:
    """An attention function that is one stage (a fused kernel, a peer's module); its attributes
    are the wrapped function's."""

    def __init__(self, fn: "AttentionFn", name: str) -> None:
        self.fn, self.name = fn, name

    def __call__(self, q, k, v):
        with stage(self.name):
            return self.fn(q, k, v)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["fn"], name)


class Unsupported(Exception):
    """Raised by `build` when the case cannot run here (a kernel that does not take this device,
    dtype or head_dim; no compiler for a compiled kernel): the row's status is 'unsupported' with
    the message. A method never falls back to another computation instead."""


@dataclass(frozen=True)
class Capabilities:
    """What a method can run; a case outside these becomes a row with status 'unsupported'."""

    backward: bool = True  # differentiable, so --mode backward makes sense
    seq_multiple: int = 1  # seq_len must be a multiple of this
    exact: bool = False  # computes exact softmax attention (no approximation)
    shared_qk: bool = False  # keys are the queries (Reformer): the k input is unused
    causal: bool = False  # has a causal form (--causal)
    # Fewer key/value heads than query heads (--kv-heads): "native" takes the smaller k, v as they
    # are; "repeat" runs per query head on k, v repeated to every head inside the call (a copy,
    # counted in time and memory, as a model without a grouped kernel does it); "no": refused.
    grouped_kv: str = "repeat"
    short_query: bool = False  # a query block shorter than the keys (--q-seq: decoding, chunked prefill)
    window: bool = False  # a sliding window with sinks (--window, --sinks), honoured exactly
    documents: bool = False  # packed documents (--documents): nothing computed across a boundary
    softcap: bool = False  # logit soft-capping (--softcap)
    recurrent: bool = False  # decodes from a recurrent state (--cache state): `Method.recurrent`


class RepeatedKV:
    """A per-head attention function on grouped k, v: repeats them to every query head, then calls
    it. Its attributes are the wrapped function's, so the method's hooks see their own object
    (`Method.hook_view` gives them k, v repeated too)."""

    def __init__(self, fn: "AttentionFn", group: int) -> None:
        self.fn, self.group = fn, group

    def widen(self, t: Any) -> Any:
        return t.repeat_interleave(self.group, dim=1)

    def __call__(self, q, k, v):
        return self.fn(q, self.widen(k), self.widen(v))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["fn"], name)


def param(default: Any, help: str, *, low: float | None = None, high: float | None = None,
          choices: tuple[str, ...] | None = None, default_means: str | None = None) -> Any:
    """Declare a method parameter: a dataclass field with its paper default and its valid range;
    `default_means` says what a default that is a sentinel (0 = as initialised) stands for."""
    kind = type(default) if choices is None else str
    return field(default=default, metadata={"help": help, "type": kind, "low": low, "high": high,
                                             "choices": choices, "default_means": default_means})


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type
    default: Any
    help: str
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None
    default_means: str | None = None

    def describe(self) -> str:
        if self.choices:
            rule = "|".join(self.choices)
        else:
            rule = self.type.__name__
            if self.low is not None:
                rule += f">={self.low:g}"
            if self.high is not None:
                rule += f"<={self.high:g}"
        default = f"{self.default}: {self.default_means}" if self.default_means else self.default
        return f"{self.name} ({rule}, default {default})"

    def coerce(self, method: str, value: Any) -> Any:
        """A CLI string (or a Python value) as this parameter's type; ValueError says what is wrong."""
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                typed = value.lower() in ("true", "1", "yes")
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            elif self.type is int and isinstance(value, str) and value.strip().endswith(".0"):
                typed = int(float(value))  # 128.0: an int read back from a CSV through pandas
            else:
                typed = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{method}: {self.name} must be {self.describe()}, not {value!r}") from None
        bad = (self.choices and typed not in self.choices) or \
              (self.low is not None and typed < self.low) or (self.high is not None and typed > self.high)
        if bad:
            raise ValueError(f"{method}: {self.name}={value!r} is impossible; it must be {self.describe()}")
        return typed


AttentionFn = Callable[..., Any]


@dataclass(frozen=True)
class Method:
    """Base of every method (subclass as a frozen dataclass of `param` fields)."""

    name: ClassVar[str] = ""  # set by the registry: the name the method is registered under
    paper: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    # The exact method this one approximates, when it is not softmax attention (Skyformer: kernelized);
    # `exact_target_params` gives the parameters that make it this instance's target.
    exact_target: ClassVar[str | None] = None
    # Columns this method adds to its rows; `diagnostics` fills them.
    extra_columns: ClassVar[tuple[str, ...]] = ()
    column_help: ClassVar[dict[str, str]] = {}  # what each extra column holds (docs/columns.md)
    # Why a shape outside `capabilities` cannot run, by capability ("causal", "grouped_kv",
    # "short_query"): the unsupported row's detail. A missing entry gets a generic sentence.
    refusals: ClassVar[dict[str, str]] = {}
    # The stages its call marks with `stage(...)`, in the order they run (attnbench profile).
    stages: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def params(cls) -> list[ParamSpec]:
        return [ParamSpec(f.name, f.metadata["type"], f.default, f.metadata["help"], f.metadata["low"],
                          f.metadata["high"], f.metadata["choices"], f.metadata.get("default_means"))
                for f in fields(cls) if f.default is not MISSING]

    def build(self, shape: Shape, *, device: Any, dtype: Any, generator: Any) -> AttentionFn:
        """Return fn(q, k, v) -> out; draw any randomness or weights here, from `generator`.
        The runner builds with gradients on when the case takes a backward (a kernel's probe can
        then check its backward too) and off for a forward case."""
        raise NotImplementedError

    def kv_grouping(self, shape: Shape) -> str:
        """How this method takes grouped k, v on `shape`: its `capabilities.grouped_kv`, unless one
        of its computations takes them natively where another repeats them (Longformer's decode)."""
        return self.capabilities.grouped_kv

    def make(self, shape: Shape, *, device: Any, dtype: Any, generator: Any) -> AttentionFn:
        """`build`, for any shape the method supports: with grouped k, v and a method that runs
        per query head (`kv_grouping` "repeat"), it is built for `shape.per_head()` and its k, v
        are repeated in the call (RepeatedKV). Everything that builds a method for a case calls this."""
        if shape.grouped and self.kv_grouping(shape) == "repeat":
            fn = self.build(shape.per_head(), device=device, dtype=dtype, generator=generator)
            return RepeatedKV(fn, shape.group)
        return self.build(shape, device=device, dtype=dtype, generator=generator)

    def formula_shape(self, shape: Shape) -> Shape:
        """The shape this method's formulas are evaluated on: the per-head one when it repeats k, v."""
        return shape.per_head() if shape.grouped and self.kv_grouping(shape) == "repeat" else shape

    @staticmethod
    def hook_view(fn: AttentionFn, k: Any, v: Any = None) -> tuple[AttentionFn, Any, Any]:
        """(the method's own function, k, v as it sees them): unwraps RepeatedKV for the hooks."""
        if isinstance(fn, RepeatedKV):
            return fn.fn, fn.widen(k), None if v is None else fn.widen(v)
        return fn, k, v

    # `scores` below is the realized number of query-key scores, for methods whose cost depends
    # on the data (sampled edges); their `diagnostics` report it as "scores_computed".

    def flops(self, shape: Shape, scores: float | None = None) -> float | None:
        """Analytic forward FLOPs of the matmul-class work (multiply-add = 2); None: no formula."""
        return None

    def backward_flops(self, shape: Shape, scores: float | None = None) -> float | None:
        """Analytic FLOPs of the backward pass alone: each matmul's gradient costs two matmuls."""
        forward = self.flops(shape, scores)
        return None if forward is None else 2 * forward

    def scores_computed(self, shape: Shape) -> float | None:
        """Query-key scores computed over the whole batch (b * h * n^2 for exact attention);
        None when only a draw can tell (then `diagnostics` reports it)."""
        return None

    def memory_bytes(self, shape: Shape, itemsize: int, mode: str, scores: float | None = None) -> float | None:
        """Analytic peak bytes allocated by one call beyond its inputs (None: no formula)."""
        return None

    def bytes_moved(self, shape: Shape, itemsize: int, mode: str, scores: float | None = None) -> float | None:
        """Analytic bytes one call moves to and from memory (achieved_bandwidth_bytes_per_s is
        against it). This default is the compulsory traffic: q, k, v read and the output written;
        a backward also reads q, k, v, the output and its gradient and writes dq, dk, dv. A method
        that writes and rereads large intermediates (n x n scores) adds them."""
        queries = shape.rows * shape.q_len * shape.head_dim * itemsize  # q, the output, their gradients
        keys = shape.batch * shape.keys_heads * shape.seq_len * shape.head_dim * itemsize  # k or v
        return 2 * queries + 2 * keys if mode == "forward" else 6 * queries + 6 * keys

    def too_large(self, name: str, largest: int, why: str) -> str | None:
        """For `unsupported`: a parameter above what the shape allows is refused, never clamped in
        silence (a row's parameters are what ran); None when it fits."""
        value = getattr(self, name)
        if value <= largest:
            return None
        return (f"{self.name}: {name}={value} is more than this shape allows ({why}); "
                f"the largest {name} here is {largest}")

    def unsupported(self, shape: Shape, mode: str) -> str | None:
        """Why this case cannot run (None if it can)."""
        caps = self.capabilities
        if mode == "backward" and not caps.backward:
            return f"{self.name} has no backward pass"
        if shape.seq_len % caps.seq_multiple:
            return f"{self.name} needs seq_len divisible by {caps.seq_multiple}"
        if shape.causal and not caps.causal:
            return self.refusals.get("causal", f"{self.name} has no causal form: it cannot keep a query from "
                                               "later keys")
        if shape.grouped and self.kv_grouping(shape) == "no":
            return self.refusals.get("grouped_kv", f"{self.name} cannot share key/value heads between query heads")
        if shape.short_query and not caps.short_query:
            return self.refusals.get("short_query", f"{self.name} needs as many queries as keys (no --q-seq)")
        for wanted, given, what in (("window", shape.windowed, "a sliding window (--window)"),
                                    ("documents", shape.documents is not None, "packed documents (--documents)"),
                                    ("softcap", shape.softcap is not None, "soft-capped scores (--softcap)"),
                                    ("recurrent", shape.cache == "state", "a recurrent state (--cache state)")):
            if given and not getattr(caps, wanted):
                return self.refusals.get(wanted, f"{self.name} has no form with {what}")
        return None

    # Optional hooks (see the module docstring); the defaults say there is nothing to report.

    def mask(self, fn: AttentionFn, q: Any, k: Any) -> Any | None:
        """(batch, heads, n, n) bool: the pairs `fn` attends on q, k; None: no mask."""
        return None

    def diagnostics(self, fn: AttentionFn, q: Any, k: Any, v: Any) -> dict[str, float]:
        """Figures of one call of `fn` for this method's `extra_columns`."""
        return {}

    def conditioning(self, fn: AttentionFn, q: Any, k: Any) -> dict[str, Any]:
        """The matrices that decide how well-posed this method's approximation is on q, k, for the
        conditioning metric to judge: `landmark_matrix` and `inverse` (a Nystrom method's m x m
        matrix and the inverse it uses), `row_sums` (the approximated row sums a method divides by,
        (b, h, n)) with either `exact_row_sums` or `exact_exponents` = (q', k', shift): the exact
        sums are then sum_j exp(q'_i . k'_j - shift_i), in the same scaling. {} where none applies."""
        return {}

    def sampler(self, fn: AttentionFn) -> Any | None:
        """The torch.Generator `fn` draws from on every call, or None."""
        return None

    def recurrent(self, fn: AttentionFn, k: Any, v: Any) -> AttentionFn:
        """For `capabilities.recurrent`: a decode step fn(q, k, v) that reads the keys before the
        query block from a state built now (outside any timed region) from those of k, v, and only
        the block's own keys from the k, v it is called with."""
        raise NotImplementedError

    def state_bytes(self, shape: Shape, itemsize: int) -> float | None:
        """For `capabilities.recurrent`: the bytes of its recurrent state (shape.cache == "state")."""
        return None

    def compiled(self) -> bool:
        """Whether `fn` compiles its kernel on its first call (FlexAttention): the runner then
        reports that call as compile_s and leaves it out of the timing."""
        return False

    def compile_mode(self, device: Any) -> str:
        """The torch.compile mode that kernel is compiled with on `device` (kernel_compile_mode)."""
        return ""

    def flops_countable(self) -> bool:
        """Whether torch's FlopCounterMode can run `fn` (FlexAttention's operator has no rule in
        torch 2.13, and a failed attempt breaks its compiled kernel): if not, `flops` stays empty."""
        return True

    def exact_target_params(self) -> dict[str, Any]:
        """Parameters of `exact_target` that this instance's own parameters fix (e.g. a scale)."""
        return {}
