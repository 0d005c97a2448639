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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

from attnbench.case import Case, Limits, make_cases
from attnbench.errors import AttnbenchError
from attnbench.metric import MeasureOptions, parse_metrics
from attnbench.options import parse_sizes

# key: the accepted type. Defaults come from Case (set-up), MeasureOptions (metrics and their
# budgets) and Limits (worker limits): they are written once, there.
KEYS: dict[str, str] = {
    "name": "a string",
    "description": "a string",
    "reproduces": "a string: the table or figure it reproduces",
    "methods": "a list of method names (wildcards allowed: [\"*\"] is every method)",
    "seq": "a length, a list of lengths, or a range string such as \"1k..16k\"",
    "params": "a table of parameter = value or [values]",
    "batch": "a positive integer or a list of them",
    "heads": "a positive integer or a list of them",
    "head_dim": "a positive integer or a list of them",
    "dtype": "a dtype name or a list of them",
    "device": "\"cpu\", \"cuda\" or \"cuda:N\"",
    "mode": "\"forward\", \"backward\" or \"train\", or a list of them",
    "scope": "\"attention\", \"layer\" or \"model\", or a list of them",
    "layers": "a positive integer (model scope)",
    "ffn_dim": "a positive integer (layer and model scope)",
    "vocab": "a positive integer (model scope)",
    "tasks": "a list of tables { name = \"TC\", seq = 4096, batch = 1, params = { ... } }: each task runs the "
             "grid at its own length(s), batch and parameter values, and its name is the rows' task",
    "seeds": "a list of integers",
    "threads": "a positive integer",
    "metrics": "a list of metric names",
    "inputs": "\"random\", \"pretrained\" or \"init\", or a list of them",
    "compile": "\"off\" or a torch.compile mode (\"default\", \"max-autotune\", ...), or a list of them",
    "input_scale": "a positive number (random inputs)",
    "layer": "a model layer, 0-5 (pretrained/init inputs)",
    "reference": "a method name (error metric)",
    "repeats": "a positive integer (error metric)",
    "processes": "a positive integer: separate processes each case is timed in",
    "l2": "\"cold\" or \"warm\": CUDA timing flushes the L2 cache before every call, or not",
    "cuda_graphs": "true or false: CUDA timing replays the call captured in a CUDA graph",
    "min_time": "seconds, a number",
    "max_time": "seconds, a number",
    "max_memory": "a size such as \"3GB\"",
    "timeout": "a duration such as \"300s\" or \"5m\"",
    "output": "a CSV path",
}
# a value or a list (a grid axis)
GRID_KEYS = ("batch", "heads", "head_dim", "dtype", "mode", "scope", "inputs", "compile")


@dataclass
class Scenario:
    """A validated sweep: what to run (the grid) and how (measurement options and limits)."""

    name: str
    methods: list[str]
    seq: list[int]
    params: dict[str, list[Any]] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)  # GRID_KEYS -> values
    seeds: list[int] = field(default_factory=lambda: [Case.seed])
    setup: dict[str, Any] = field(default_factory=dict)  # device, threads, input_scale, layer... (None: default)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # {name, seq, batch: [sizes], params: {grids}}
    options: MeasureOptions = field(default_factory=MeasureOptions)
    limits: Limits = field(default_factory=Limits)
    output: str | None = None
    description: str = ""
    reproduces: str = ""

    def cases(self) -> list[Case]:
        """The cartesian product, validated against the registry."""
        import itertools

        from attnbench.registry import get_method

        get_method(self.options.reference)
        if "error" in self.options.metrics and any(s != "attention" for s in self.grid.get("scope", [])):
            from attnbench.metrics.error import SCOPE_ONLY

            raise AttnbenchError(SCOPE_ONLY)
        cases = []
        tasks = self.tasks or [{"name": "", "seq": self.seq}]
        for task in tasks:
            grid = {**self.grid, **({"batch": task["batch"]} if task.get("batch") else {})}
            for values in itertools.product(*(grid.get(k, [None]) for k in GRID_KEYS)):
                for seed in self.seeds:
                    params = {**self.params, **task.get("params", {})}
                    cases += make_cases(self.methods, task["seq"], params, seed=seed, task=task["name"],
                                        **dict(zip(GRID_KEYS, values)), **self.setup)
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

    def __init__(self, source: str, data: dict[str, Any]) -> None:
        self.source, self.data = source, data

    def fail(self, key: str, problem: str) -> AttnbenchError:
        return AttnbenchError(f"{self.source}: {key}: {problem}")

    def expect(self, key: str, ok: bool) -> Any:
        value = self.data[key]
        if not ok:
            raise self.fail(key, f"must be {KEYS[key]}, not {value!r}")
        return value

    def listed(self, key: str, kind: type) -> list:
        value = self.data[key]
        items = value if isinstance(value, list) else [value]
        good = bool(items) and all(isinstance(v, kind) and not isinstance(v, bool) for v in items)
        if kind is int:
            good = good and all(v > 0 for v in items)
        self.expect(key, good)
        return items

    def given(self, key: str, ok: Callable[[Any], bool]) -> Any:
        """The value of an optional key (None when absent), checked."""
        if key not in self.data:
            return None
        return self.expect(key, ok(self.data[key]))


def _nonempty_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value)


def _lengths(check: _Checker, key: str, value: Any) -> list[int]:
    """A length, a list of lengths or a range string, as a list."""
    if isinstance(value, str):
        try:
            return parse_sizes(value, key)
        except AttnbenchError as exc:
            raise check.fail(key, str(exc)) from None
    items = value if isinstance(value, list) else [value]
    if not items or not all(_whole(v, 1) for v in items):
        raise check.fail(key, f"must be {KEYS['seq']}, not {value!r}")
    return items


def _grids(check: _Checker, where: str, params: dict) -> dict[str, list]:
    """{name: value or [values]} -> {name: [values]}."""
    grids = {}
    for name, values in params.items():
        values = values if isinstance(values, list) else [values]
        if not values or any(isinstance(v, (dict, list)) for v in values):
            raise check.fail(f"{where}.{name}", f"must be a value or a non-empty list of values, not {values!r}")
        grids[name] = values
    return grids


def _task(check: _Checker, index: int, task: Any) -> dict[str, Any]:
    where = f"tasks[{index}]"
    if not isinstance(task, dict) or not isinstance(task.get("name"), str) or "seq" not in task \
            or set(task) - {"name", "seq", "batch", "params"} or not isinstance(task.get("params", {}), dict):
        raise check.fail(where, f"must be a table {{ name = \"...\", seq = ..., batch = ..., params = {{...}} }}, "
                                f"not {task!r}")
    batch = task.get("batch")
    batches = batch if isinstance(batch, list) else [batch] if batch is not None else []
    if not all(_whole(b, 1) for b in batches):
        raise check.fail(f"{where}.batch", f"must be a positive integer or a list of them, not {batch!r}")
    return {"name": task["name"], "seq": _lengths(check, f"{where}.seq", task["seq"]), "batch": batches,
            "params": _grids(check, f"{where}.params", task.get("params", {}))}


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def scenario_from_dict(data: dict[str, Any], source: str = "command line") -> Scenario:
    """Validate a scenario's keys and types (not yet its methods: see Scenario.cases)."""
    check = _Checker(source, data)
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise check.fail(key, f"unknown key; {hint}valid keys: {', '.join(KEYS)}")
    for required in ("methods", "seq"):
        if required not in data and not (required == "seq" and "tasks" in data):
            raise check.fail(required, f"missing; give {KEYS[required]}")
    methods = check.listed("methods", str)
    seq = _lengths(check, "seq", data["seq"]) if "seq" in data else []
    tasks = [_task(check, i, task) for i, task in enumerate(check.given("tasks", _nonempty_list) or [])]
    grids = _grids(check, "params", check.given("params", lambda v: isinstance(v, dict)) or {})
    grid = {k: check.listed(k, int if k in ("batch", "heads", "head_dim") else str) for k in GRID_KEYS if k in data}
    seeds = check.given("seeds", lambda v: isinstance(v, list) and bool(v) and all(_whole(x, -2**63) for x in v))
    setup = {"device": check.given("device", lambda v: isinstance(v, str)),
             "threads": check.given("threads", lambda v: _whole(v, 1)),
             "input_scale": check.given("input_scale", _positive),
             "layer": check.given("layer", lambda v: _whole(v, 0)),
             **{k: check.given(k, lambda v: _whole(v, 1)) for k in ("layers", "ffn_dim", "vocab")}}
    options = {"min_time_s": check.given("min_time", _positive), "max_time_s": check.given("max_time", _positive),
               "reference": check.given("reference", lambda v: isinstance(v, str)),
               "repeats": check.given("repeats", lambda v: _whole(v, 1)),
               "processes": check.given("processes", lambda v: _whole(v, 1)),
               "l2": check.given("l2", lambda v: v in ("cold", "warm")),
               "cuda_graphs": check.given("cuda_graphs", lambda v: isinstance(v, bool))}
    if "metrics" in data:
        try:
            options["metrics"] = parse_metrics(check.listed("metrics", str), "metrics")
        except AttnbenchError as exc:
            raise check.fail("metrics", str(exc).removeprefix("metrics ")) from None
    try:
        limits = {"max_memory_bytes": parse_bytes(data["max_memory"]) if "max_memory" in data else None,
                  "timeout_s": parse_seconds(data["timeout"]) if "timeout" in data else None}
    except AttnbenchError as exc:
        raise AttnbenchError(f"{source}: {exc}") from None
    text = {k: check.given(k, lambda v: isinstance(v, str)) for k in ("name", "description", "reproduces", "output")}

    def given(values: dict) -> dict:
        return {k: v for k, v in values.items() if v is not None}

    return Scenario(name=text["name"] or Path(source).stem, methods=methods, seq=seq, params=grids, grid=grid,
                    tasks=tasks,
                    seeds=seeds or [Case.seed], setup=given(setup), options=MeasureOptions(**given(options)),
                    limits=Limits(**given(limits)), output=text["output"],
                    description=text["description"] or "", reproduces=text["reproduces"] or "")


def _bundled():
    """The scenarios shipped in the package (the project's scenarios/ folder)."""
    from importlib import resources

    return resources.files("attnbench").joinpath("scenarios")


def bundled_scenarios() -> list[tuple[str, dict[str, Any]]]:
    """(name to give `sweep`, the file's keys) for every bundled scenario, sorted by name."""
    folder = _bundled()
    if not folder.is_dir():
        return []
    found = [(entry.name.removesuffix(".toml"), tomllib.loads(entry.read_text()))
             for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return sorted(found, key=lambda item: item[0])


def resolve_scenario(reference: str | Path) -> Path:
    """A scenario file's path: `reference` itself when it exists, else the bundled scenario of that
    name (`skyformer_table2`, `skyformer-table2` and `skyformer_table2.toml` are one)."""
    path = Path(reference)
    if path.exists() or len(path.parts) > 1:
        return path
    stem = path.name.removesuffix(".toml").replace("-", "_")
    bundled = _bundled().joinpath(f"{stem}.toml")
    if bundled.is_file():
        return Path(str(bundled))
    known = ", ".join(name for name, _ in bundled_scenarios())
    raise AttnbenchError(f"no scenario file or bundled scenario {str(reference)!r}; bundled: {known} "
                         "('attnbench scenarios' describes them)")


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None,
                  defaults: dict[str, Any] | None = None) -> Scenario:
    """Read, merge command-line overrides into, and validate a scenario file (a path, or the name
    of a bundled scenario); `defaults` fill keys neither gives."""
    path = resolve_scenario(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AttnbenchError(f"scenario {path} does not exist; 'attnbench scenarios' lists the bundled ones") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttnbenchError(f"cannot read scenario {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AttnbenchError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_dict({**(defaults or {}), **data, **(overrides or {})}, source=str(path))
