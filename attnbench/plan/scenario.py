"""Scenario files: a sweep written down (TOML), validated with one-line errors.

    name = "smartbird-fig5"
    reproduces = "Smart Bird, Fig. 5: cost against K"
    methods = ["full", "smartbird"]
    seq = "1k..8k"                 # or [1024, 4096], or 4096
    heads = 4                      # batch, heads, head_dim, dtype, mode: a value or a list (grid)
    params = { k = [5, 10, 20, 40] }   # each applies to the methods that declare it
    metrics = ["time", "memory"]
    seeds = [0, 1]

Every key, its type and where it lands are in the option spec (attnbench.plan.options: the
built-in options and those the metrics declare). Values given on the command line override the
file's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench import tomlfile
from attnbench.errors import AttnbenchError
from attnbench.plan.case import Case, Limits, MeasureOptions, make_cases
from attnbench.plan.decoding import Documents
from attnbench.plan.options import OPTIONS, scenario_keys
from attnbench.plan.values import Lengths, parse_bytes, parse_seconds, whole

# Every key, its grammar and where it lands are in attnbench.plan.options.OPTIONS; defaults come from
# Case (set-up), MeasureOptions (metrics and their budgets) and Limits (worker limits).
GRID_KEYS = tuple(option.field or option.key for option in OPTIONS
                  if option.scenario and option.target == "grid")  # Case fields, grid axes


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
    # {name, seq, batch: [sizes], documents: [counts or lengths], params: {grids}}
    tasks: list[dict[str, Any]] = field(default_factory=list)
    options: MeasureOptions = field(default_factory=MeasureOptions)
    limits: Limits = field(default_factory=Limits)
    output: str | None = None
    description: str = ""
    reproduces: str = ""

    def cases(self, devices_here: bool = True) -> list[Case]:
        """The cartesian product, validated against the registry."""
        import itertools

        from attnbench.methods.registry import get_method
        from attnbench.metrics import chosen

        get_method(self.options.reference)
        for metric in chosen(self.options.metrics):
            if metric.scopes and any(s not in metric.scopes for s in self.grid.get("scope", [])):
                raise AttnbenchError(metric.scope_error or f"the {metric.name} metric measures at --scope "
                                     f"{', '.join(metric.scopes)} only")
        cases = []
        tasks = self.tasks or [{"name": "", "seq": self.seq}]
        for task in tasks:
            grid = {**self.grid, **{key: task[key] for key in TASK_GRIDS if task.get(key)}}
            for values in itertools.product(*(grid.get(k, [None]) for k in GRID_KEYS)):
                for seed in self.seeds:
                    params = {**self.params, **task.get("params", {})}
                    setup = {**self.setup, **{key: task[key] for key in TASK_SETUP if key in task}}
                    cases += make_cases(self.methods, task["seq"], params, seed=seed, task=task["name"],
                                        devices_here=devices_here, **dict(zip(GRID_KEYS, values)), **setup)
        return cases


def _fail(source: str, key: str, problem: str) -> AttnbenchError:
    return AttnbenchError(f"{source}: {key}: {problem}")


def _lengths(source: str, key: str, value: Any) -> list[int]:
    """A length, a list of lengths or a range string, as a list (the grammar of `seq`)."""
    try:
        return Lengths().check(value, key)
    except ValueError:
        raise _fail(source, key, f"must be {Lengths.kind}, not {value!r}") from None
    except AttnbenchError as exc:
        raise _fail(source, key, str(exc)) from None


def _grids(source: str, where: str, params: dict) -> dict[str, list]:
    """{name: value or [values]} -> {name: [values]}."""
    grids = {}
    for name, values in params.items():
        values = values if isinstance(values, list) else [values]
        if not values or any(isinstance(v, (dict, list)) for v in values):
            raise _fail(source, f"{where}.{name}", f"must be a value or a non-empty list of values, not {values!r}")
        grids[name] = values
    return grids


TASK_GRIDS = ("batch", "documents", "train_task", "pairs")  # the grid axes a task may set for itself
TASK_SETUP = ("vocab",)  # and the set-up


def _task(source: str, index: int, task: Any) -> dict[str, Any]:
    where = f"tasks[{index}]"
    if not isinstance(task, dict) or not isinstance(task.get("name"), str) or "seq" not in task \
            or set(task) - {"name", "seq", "params", *TASK_GRIDS, *TASK_SETUP} \
            or not isinstance(task.get("params", {}), dict):
        raise _fail(source, where, f"must be a table {{ name = \"...\", seq = ..., batch = ..., documents = ..., "
                                   f"train_task = ..., pairs = ..., params = {{...}} }}, not {task!r}")
    trained = {}
    for key in ("train_task", "pairs", "vocab"):
        if key in task:
            option = scenario_keys()[key]
            try:
                trained[key] = option.value.check(task[key])
            except ValueError:
                raise _fail(source, f"{where}.{key}", f"must be {option.value.kind}, not {task[key]!r}") from None
    batch = task.get("batch")
    batches = batch if isinstance(batch, list) else [batch] if batch is not None else []
    if not all(whole(b) for b in batches):
        raise _fail(source, f"{where}.batch", f"must be a positive integer or a list of them, not {batch!r}")
    documents = []
    if "documents" in task:
        try:
            documents = Documents().check(task["documents"])
        except ValueError:
            raise _fail(source, f"{where}.documents", f"must be {Documents.kind}, not {task['documents']!r}") from None
    return {"name": task["name"], "seq": _lengths(source, f"{where}.seq", task["seq"]), "batch": batches,
            "documents": documents, "params": _grids(source, f"{where}.params", task.get("params", {})), **trained}


def scenario_from_dict(data: dict[str, Any], source: str = "command line") -> Scenario:
    """Validate a scenario's keys and types against the option spec (not yet its methods: see
    Scenario.cases) and route each value to where it lands."""
    spec = scenario_keys()
    for key in data:
        if key not in spec:
            close = difflib.get_close_matches(key, spec, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _fail(source, key, f"unknown key; {hint}valid keys: {', '.join(spec)}")
    inputs = data.get("inputs", [])
    captured = any(str(v).startswith("capture:") for v in (inputs if isinstance(inputs, list) else [inputs]))
    for required in ("methods", "seq"):
        if required not in data and not (required == "seq" and ("tasks" in data or captured)):
            raise _fail(source, required, f"missing; give {spec[required].value.kind}")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        option = spec[key]
        try:
            values[key] = option.value.check(raw)
        except ValueError:
            raise _fail(source, key, f"must be {option.value.kind}, not {raw!r}") from None
        except AttnbenchError as exc:
            raise _fail(source, key, str(exc).strip()) from None
    try:
        limits = {"max_memory_bytes": parse_bytes(values["max_memory"]) if "max_memory" in values else None,
                  "timeout_s": parse_seconds(values["timeout"]) if "timeout" in values else None}
    except AttnbenchError as exc:
        raise AttnbenchError(f"{source}: {exc}") from None
    routed: dict[str, dict[str, Any]] = {"grid": {}, "setup": {}, "options": {}, "metric": {}}
    for key, value in values.items():
        option = spec[key]
        if option.target in routed:
            routed[option.target][option.field or key] = value
    routed["options"]["settings"] = tuple(sorted(routed.pop("metric").items()))
    if "metrics" in routed["options"]:
        routed["options"]["metrics"] = tuple(routed["options"]["metrics"])
    text = {k: values.get(k) for k in ("name", "description", "reproduces", "output")}
    return Scenario(name=text["name"] or Path(source).stem, methods=values["methods"],
                    seq=_lengths(source, "seq", data["seq"]) if "seq" in data else [],
                    params=_grids(source, "params", values.get("params", {})), grid=routed["grid"],
                    tasks=[_task(source, i, task) for i, task in enumerate(values.get("tasks", []))],
                    seeds=values.get("seeds") or [Case.seed], setup=routed["setup"],
                    options=MeasureOptions(**routed["options"]),
                    limits=Limits(**{k: v for k, v in limits.items() if v is not None}), output=text["output"],
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
    found = [(entry.name.removesuffix(".toml"), tomlfile.loads(entry.read_text()))
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
        data = tomlfile.loads(path.read_text())
    except FileNotFoundError:
        raise AttnbenchError(f"scenario {path} does not exist; 'attnbench scenarios' lists the bundled ones") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttnbenchError(f"cannot read scenario {path}: {exc}") from None
    except tomlfile.TOMLDecodeError as exc:
        raise AttnbenchError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_dict({**(defaults or {}), **data, **(overrides or {})}, source=str(path))
