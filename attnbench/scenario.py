"""Scenario files: a sweep written down (TOML), validated with one-line errors.

    name = "smartbird-fig5"
    reproduces = "Smart Bird, Fig. 5: cost against K"
    methods = ["full", "smartbird"]
    seq = "1k..8k"                 # or [1024, 4096], or 4096
    heads = 4                      # batch, heads, head_dim, dtype, mode: a value or a list (grid)
    params = { k = [5, 10, 20, 40] }   # each applies to the methods that declare it
    metrics = ["time", "memory"]
    seeds = [0, 1]

Every key, its type and its default are in KEYS below. Values given on the command line
override the file's.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench.errors import AttnbenchError
from attnbench.options import parse_metrics, parse_sizes

# key: (description of the accepted type, default)
KEYS: dict[str, tuple[str, Any]] = {
    "name": ("a string", None),
    "description": ("a string", ""),
    "reproduces": ("a string: the table or figure it reproduces", ""),
    "methods": ("a list of method names", None),
    "seq": ("a length, a list of lengths, or a range string such as \"1k..16k\"", None),
    "params": ("a table of parameter = value or [values]", {}),
    "batch": ("a positive integer or a list of them", 1),
    "heads": ("a positive integer or a list of them", 4),
    "head_dim": ("a positive integer or a list of them", 64),
    "dtype": ("a dtype name or a list of them", "float32"),
    "device": ("\"cpu\", \"cuda\" or \"cuda:N\"", "cpu"),
    "mode": ("\"forward\" or \"backward\", or a list of them", "forward"),
    "seeds": ("a list of integers", [0]),
    "threads": ("a positive integer", None),
    "metrics": ("a list of metric names", ["time", "flops", "memory", "fvcore"]),
    "inputs": ("\"random\", \"pretrained\" or \"init\", or a list of them", "random"),
    "input_scale": ("a positive number (random inputs)", 1.0),
    "layer": ("a model layer, 0-5 (pretrained/init inputs)", 2),
    "reference": ("a method name (error metric)", "full"),
    "repeats": ("a positive integer (error metric)", 1),
    "min_time": ("seconds, a number", 0.5),
    "max_time": ("seconds, a number", 5.0),
    "max_memory": ("a size such as \"3GB\"", "3GB"),
    "timeout": ("a duration such as \"300s\" or \"5m\"", "300s"),
    "output": ("a CSV path", None),
}
SHAPE_KEYS = ("batch", "heads", "head_dim", "dtype", "mode", "inputs")


@dataclass
class Scenario:
    """A validated sweep: what to run (the grid) and how (limits and measurement budget)."""

    name: str
    methods: list[str]
    seq: list[int]
    params: dict[str, list[Any]] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)  # batch, heads, head_dim, dtype, mode
    device: str = "cpu"
    seeds: list[int] = field(default_factory=lambda: [0])
    threads: int | None = None
    metrics: list[str] = field(default_factory=lambda: list(KEYS["metrics"][1]))
    min_time: float = 0.5
    max_time: float = 5.0
    max_memory_bytes: int = 3 * 2**30
    timeout_s: float = 300.0
    output: str | None = None
    description: str = ""
    reproduces: str = ""
    input_scale: float = 1.0
    layer: int = 2
    reference: str = "full"
    repeats: int = 1

    def cases(self):
        """The cartesian product, validated against the registry."""
        import itertools

        from attnbench.case import make_cases
        from attnbench.registry import get_method

        get_method(self.reference)
        cases = []
        for batch, heads, head_dim, dtype, mode, inputs in itertools.product(*(self.grid[k] for k in SHAPE_KEYS)):
            for seed in self.seeds:
                cases += make_cases(self.methods, self.seq, self.params, batch=batch, heads=heads,
                                    head_dim=head_dim, dtype=dtype, device=self.device, mode=mode, seed=seed,
                                    threads=self.threads, inputs=inputs, input_scale=self.input_scale,
                                    layer=self.layer)
        return cases


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


class _Checker:
    """Type checks that name the file, the key and the fix in one line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> AttnbenchError:
        return AttnbenchError(f"{self.source}: {key}: {problem}")

    def expect(self, key: str, value: Any, ok: bool) -> Any:
        if not ok:
            raise self.fail(key, f"must be {KEYS[key][0]}, not {value!r}")
        return value

    def listed(self, key: str, value: Any, kind: type) -> list:
        items = value if isinstance(value, list) else [value]
        good = bool(items) and all(isinstance(v, kind) and not isinstance(v, bool) for v in items)
        if kind is int:
            good = good and all(v > 0 for v in items)
        self.expect(key, value, good)
        return items


def scenario_from_dict(data: dict[str, Any], source: str = "command line") -> Scenario:
    """Validate a scenario's keys and types (not yet its methods: see Scenario.cases)."""
    check = _Checker(source)
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise check.fail(key, f"unknown key; {hint}valid keys: {', '.join(KEYS)}")
    for required in ("methods", "seq"):
        if required not in data:
            raise check.fail(required, f"missing; give {KEYS[required][0]}")
    methods = check.listed("methods", data["methods"], str)
    seq_value = data["seq"]
    if isinstance(seq_value, str):
        try:
            seq = parse_sizes(seq_value, "seq")
        except AttnbenchError as exc:
            raise check.fail("seq", str(exc)) from None
    else:
        seq = check.listed("seq", seq_value, int)
    params = check.expect("params", data.get("params", {}), isinstance(data.get("params", {}), dict))
    grids = {}
    for name, values in params.items():
        values = values if isinstance(values, list) else [values]
        if not values or any(isinstance(v, (dict, list)) for v in values):
            raise check.fail(f"params.{name}", f"must be a value or a non-empty list of values, not {values!r}")
        grids[name] = values
    shape = {k: data.get(k, KEYS[k][1]) for k in SHAPE_KEYS}
    grid = {k: check.listed(k, v, int) for k, v in shape.items() if k in ("batch", "heads", "head_dim")}
    grid.update({k: check.listed(k, v, str) for k, v in shape.items() if k in ("dtype", "mode", "inputs")})
    seeds = data.get("seeds", KEYS["seeds"][1])
    check.expect("seeds", seeds, isinstance(seeds, list) and bool(seeds)
                 and all(isinstance(x, int) and not isinstance(x, bool) for x in seeds))
    threads = data.get("threads")
    if threads is not None:
        check.expect("threads", threads, isinstance(threads, int) and not isinstance(threads, bool) and threads > 0)
    number = lambda k: check.expect(k, data.get(k, KEYS[k][1]),  # noqa: E731
                                    isinstance(data.get(k, KEYS[k][1]), (int, float)) and data.get(k, KEYS[k][1]) > 0)
    text = lambda k: check.expect(k, data.get(k, KEYS[k][1]), isinstance(data.get(k, KEYS[k][1]), str))  # noqa: E731
    metrics = check.listed("metrics", data.get("metrics", KEYS["metrics"][1]), str)
    try:
        metrics = list(parse_metrics(metrics, "metrics"))
    except AttnbenchError as exc:
        raise check.fail("metrics", str(exc).removeprefix("metrics ")) from None
    try:
        max_memory = parse_bytes(data.get("max_memory", KEYS["max_memory"][1]))
        timeout = parse_seconds(data.get("timeout", KEYS["timeout"][1]))
    except AttnbenchError as exc:
        raise AttnbenchError(f"{source}: {exc}") from None
    output = data.get("output")
    if output is not None:
        text("output")
    layer, repeats = data.get("layer", 2), data.get("repeats", 1)
    check.expect("layer", layer, isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0)
    check.expect("repeats", repeats, isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0)
    return Scenario(name=text("name") if "name" in data else Path(source).stem, methods=methods, seq=seq,
                    input_scale=float(number("input_scale")), layer=layer, reference=text("reference"),
                    repeats=repeats,
                    params=grids, grid=grid, device=text("device"), seeds=seeds, threads=threads,
                    metrics=metrics, min_time=float(number("min_time")), max_time=float(number("max_time")),
                    max_memory_bytes=max_memory, timeout_s=timeout, output=output,
                    description=text("description"), reproduces=text("reproduces"))


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, merge command-line overrides into, and validate a scenario file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AttnbenchError(f"scenario {path} does not exist; see scenarios/ for examples") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttnbenchError(f"cannot read scenario {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AttnbenchError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_dict({**data, **(overrides or {})}, source=str(path))
