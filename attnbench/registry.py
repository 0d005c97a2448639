"""The method registry: every attention implementation registers where it is defined.

A method is a frozen dataclass whose fields are its parameters (declared with `param`, paper
defaults, validated on construction) and whose `build` turns a shape into an attention function
`fn(q, k, v) -> out` on (batch, heads, seq_len, head_dim) tensors. Random draws and weights are
made in `build`, outside any timed region. Each method also states, for the report, its analytic
FLOPs (a multiply-add counts 2), how many query-key scores it computes, and the bytes it keeps
alive at its peak.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar

from attnbench.errors import AttnbenchError

REGISTRY: dict[str, type["Method"]] = {}


@dataclass(frozen=True)
class Shape:
    """What one attention call works on: q, k, v are (batch, heads, seq_len, head_dim)."""

    batch: int
    heads: int
    seq_len: int
    head_dim: int

    @property
    def rows(self) -> int:
        """Independent attention problems: batch x heads."""
        return self.batch * self.heads


@dataclass(frozen=True)
class Capabilities:
    """What a method can run; a case outside these becomes a row with status 'unsupported'."""

    backward: bool = True  # differentiable, so --mode backward makes sense
    seq_multiple: int = 1  # seq_len must be a multiple of this
    exact: bool = False  # computes exact softmax attention (no approximation)
    shared_qk: bool = False  # keys are the queries (Reformer): the k input is unused


def param(default: Any, help: str, *, low: float | None = None, high: float | None = None,
          choices: tuple[str, ...] | None = None) -> Any:
    """Declare a method parameter: a dataclass field with its paper default and its valid range."""
    kind = type(default) if choices is None else str
    return field(default=default, metadata={"help": help, "type": kind, "low": low, "high": high,
                                             "choices": choices})


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type
    default: Any
    help: str
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None

    def describe(self) -> str:
        if self.choices:
            rule = "|".join(self.choices)
        else:
            rule = self.type.__name__
            if self.low is not None:
                rule += f">={self.low:g}"
            if self.high is not None:
                rule += f"<={self.high:g}"
        return f"{self.name} ({rule}, default {self.default})"

    def coerce(self, method: str, value: Any) -> Any:
        """Turn a CLI string (or a Python value) into this parameter's type, checking its range."""
        try:
            if self.type is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                typed = value.lower() in ("true", "1", "yes")
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            else:
                typed = self.type(value)
        except (TypeError, ValueError):
            raise AttnbenchError(f"{method}: {self.name} must be {self.describe()}, not {value!r}") from None
        bad = (self.choices and typed not in self.choices) or \
              (self.low is not None and typed < self.low) or (self.high is not None and typed > self.high)
        if bad:
            raise AttnbenchError(f"{method}: {self.name}={value!r} is impossible; it must be {self.describe()}")
        return typed


AttentionFn = Callable[..., Any]


@dataclass(frozen=True)
class Method:
    """Base of every registered method (subclass as a frozen dataclass of `param` fields)."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    # The exact method this one approximates, when it is not softmax attention (Skyformer: kernelized).
    exact_target: ClassVar[str | None] = None
    # Columns this method adds to its rows; the built fn's `diagnostics(q, k, v)` fills them.
    extra_columns: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def params(cls) -> list[ParamSpec]:
        return [ParamSpec(f.name, f.metadata["type"], f.default, f.metadata["help"], f.metadata["low"],
                          f.metadata["high"], f.metadata["choices"])
                for f in fields(cls) if f.default is not MISSING]

    def build(self, shape: Shape, *, device: Any, dtype: Any, generator: Any) -> AttentionFn:
        """Return fn(q, k, v) -> out; draw any randomness or weights here, from `generator`."""
        raise NotImplementedError

    # `scores` below is the realized number of query-key scores, for methods whose cost depends
    # on the data (sampled edges); their built fn reports it as diagnostics()["scores_computed"].

    def flops(self, shape: Shape, scores: float | None = None) -> float | None:
        """Analytic forward FLOPs of the matmul-class work (multiply-add = 2); None: no formula."""
        return None

    def backward_flops(self, shape: Shape, scores: float | None = None) -> float | None:
        """Analytic FLOPs of the backward pass alone: each matmul's gradient costs two matmuls."""
        forward = self.flops(shape, scores)
        return None if forward is None else 2 * forward

    def scores(self, shape: Shape) -> float | None:
        """Query-key scores computed over the whole batch (b * h * n^2 for exact attention)."""
        return None

    def memory_bytes(self, shape: Shape, itemsize: int, mode: str, scores: float | None = None) -> float | None:
        """Analytic peak bytes allocated by one call beyond its inputs (None: no formula)."""
        return None

    def unsupported(self, shape: Shape, mode: str) -> str | None:
        """Why this case cannot run (None if it can)."""
        caps = self.capabilities
        if mode == "backward" and not caps.backward:
            return f"{self.name} has no backward pass"
        if shape.seq_len % caps.seq_multiple:
            return f"{self.name} needs seq_len divisible by {caps.seq_multiple}"
        return None


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: `@register("full")` above a frozen dataclass subclass of Method."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        if not issubclass(cls, Method):
            raise TypeError(f"{cls.__name__} must subclass attnbench.registry.Method")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


ENTRY_POINT_GROUP = "attnbench.methods"
_loaded = False


def _load_builtin() -> None:
    """Register the built-in methods, then those installed packages declare as entry points.

    An entry point `name = "pkg.module:Factory"` in the group `attnbench.methods` names a Method
    subclass (registered under `name` unless it registered itself) or a module that registers.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    import attnbench.methods  # noqa: F401  (registers every built-in method)
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must not break attnbench
            raise AttnbenchError(f"cannot load method plugin {point.name!r} ({point.value}): "
                                 f"{type(exc).__name__}: {exc}; uninstall it or fix its import") from None
        if isinstance(loaded, type) and issubclass(loaded, Method) and loaded not in REGISTRY.values():
            register(point.name)(loaded)


def _load_reference(name: str) -> type[Method]:
    """`pkg.module:Factory` -> the Method subclass it names (or that calling it returns)."""
    import importlib

    module_name, _, attribute = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise AttnbenchError(f"cannot load method {name!r}: {type(exc).__name__}: {exc}; give an importable "
                             "module:attribute whose module is on PYTHONPATH") from None
    if not (isinstance(found, type) and issubclass(found, Method)) and callable(found):
        found = found()
    if not (isinstance(found, type) and issubclass(found, Method)):
        raise AttnbenchError(f"{name} is not a method: it must be (or return) a subclass of attnbench.Method")
    if found not in REGISTRY.values():
        register(name)(found)
    return found


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching a shell-style wildcard, sorted."""
    _load_builtin()
    return sorted(n for n in REGISTRY if fnmatch.fnmatch(n, pattern))


def get_method(name: str) -> type[Method]:
    """The registered class for `name`; an unknown name is an error that suggests close names."""
    _load_builtin()
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        return _load_reference(name)
    close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise AttnbenchError(f"unknown method {name!r}; {hint}run 'attnbench list' to see all methods")


def create_method(name: str, **params: Any) -> Method:
    """Instantiate a method with typed, validated parameters; None values keep the defaults."""
    cls = get_method(name)
    specs = {p.name: p for p in cls.params()}
    typed = {}
    for key, value in params.items():
        if value is None:
            continue
        if key not in specs:
            valid = ", ".join(p.describe() for p in specs.values()) or "none"
            raise AttnbenchError(f"{name} has no parameter {key!r}; its parameters: {valid}")
        typed[key] = specs[key].coerce(name, value)
    return cls(**typed)
