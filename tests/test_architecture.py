"""The shape of the code: packages in layers, each importing only its own layer and those below
(lazy imports inside functions included), `plan/` and the metric and method contracts free of
torch at import, no import cycle, at most 8 modules flat in attnbench/, no module over 400 lines
and no function over 60, no module outside attnbench/metrics/ that special-cases a metric by name,
and measuring scripts that still import."""

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "attnbench"
METRIC_NAMES = {path.stem for path in (PACKAGE / "metrics").glob("*.py") if path.stem != "__init__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, ast.Module]:
    """Every module of the package, parsed once for the whole file (the trees are only read)."""
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The attnbench modules `name` imports anywhere (inside functions too): a cycle through a lazy
    import is still a cycle."""
    package = name if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists() else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        found |= {t for t in targets if t in known and t != name}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# Lowest first. A module belongs to the first entry its dotted name starts with (or equals).
LAYERS = [
    ("root", ["attnbench", "attnbench.errors", "attnbench.tomlfile"]),
    ("tasks", ["attnbench.tasks"]),
    ("methods", ["attnbench.methods"]),
    ("measure", ["attnbench.measure"]),
    ("metric contract", ["attnbench.metrics", "attnbench.metrics.display", "attnbench.metrics.policies"]),
    ("plan", ["attnbench.plan"]),
    ("results", ["attnbench.results"]),
    ("hf", ["attnbench.hf"]),
    ("execute", ["attnbench.execute"]),
    ("metric passes", ["attnbench.metrics."]),
    ("judge", ["attnbench.judge"]),
    ("views", ["attnbench.views"]),
    ("ab", ["attnbench.ab"]),
    ("entry points", ["attnbench.cli", "attnbench.ab_side", "attnbench.__main__"]),
]
FLAT_ALLOWED = 8  # modules directly in attnbench/ besides __init__, __main__ and errors
NO_TORCH_AT_IMPORT = ("attnbench.plan", "attnbench.metrics", "attnbench.methods.contract",
                      "attnbench.methods.registry", "attnbench.results", "attnbench.judge")


def layer_of(module: str) -> int:
    """The index of the module's layer: exact names first, then the longest package prefix."""
    best, length = None, -1
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            exact = module == name or (name.endswith(".") and module.startswith(name))
            inside = module.startswith(name + ".")
            if exact and len(name) + 1 > length:
                best, length = index, len(name) + 1
            elif inside and len(name) > length:
                best, length = index, len(name)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} ({LAYERS[layer_of(module)][0]}) imports {other} ({LAYERS[layer_of(other)][0]})"
                  for module, imported in graph.items() for other in imported
                  if layer_of(other) > layer_of(module))


def test_every_package_imports_only_its_layer_and_those_below():
    modules = _modules()
    graph = {name: _imports(name, tree, set(modules)) for name, tree in modules.items()}
    assert upward_imports(graph) == []


def test_the_layer_check_can_fail():
    graph = {"attnbench.plan.case": {"attnbench.execute.runner"}, "attnbench.metrics.time": {"attnbench.execute.calls"},
             "attnbench.metrics": {"attnbench.metrics.time"}}
    assert upward_imports(graph) == [
        "attnbench.metrics (metric contract) imports attnbench.metrics.time (metric passes)",
        "attnbench.plan.case (plan) imports attnbench.execute.runner (execute)"]


def test_few_modules_are_flat_and_every_package_says_what_it_may_import():
    flat = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "errors"))
    assert len(flat) <= FLAT_ALLOWED, flat
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc, f"{init.relative_to(ROOT)}: its docstring must say what the package may import"


def _top_level_imports(tree: ast.Module) -> set[str]:
    """Modules imported when the module itself is (not inside functions or TYPE_CHECKING)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module or "")
    return found


def test_plan_and_the_contracts_import_no_torch_at_import_time():
    modules = _modules()
    graph = {name: {m for m in _top_level_imports(tree)} for name, tree in modules.items()}

    def reaches_torch(name, seen=()):
        if name in seen:
            return False
        direct = graph.get(name, set())
        if any(m == "torch" or m.startswith("torch.") for m in direct):
            return True
        return any(reaches_torch(m, (*seen, name)) for m in direct if m in graph)

    heavy = [name for name in modules if name.startswith(NO_TORCH_AT_IMPORT) and reaches_torch(name)]
    assert heavy == []
    graph["attnbench.plan.fake"] = {"attnbench.execute.calls"}
    assert reaches_torch("attnbench.plan.fake")  # the check can fail


def test_the_tests_mirror_the_packages():
    """A test file lives in the folder of the package it tests (tests/judge/ for attnbench/judge/);
    only the architecture's own test, the shared fixtures and the fault methods stay at the top."""
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= packages and folders, folders - packages
    top = sorted(p.name for p in (ROOT / "tests").glob("*.py"))
    assert top == ["conftest.py", "sweep_faults.py", "test_architecture.py"], top


def test_no_module_over_400_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_modules.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                      f"{node.end_lineno - node.lineno + 1} lines")
    assert long_modules == [] and long_functions == []


def test_no_import_cycle_inside_attnbench():
    modules = _modules()
    graph = {name: _imports(name, tree, set(modules)) for name, tree in modules.items()}
    assert graph["attnbench.execute.runner"] >= {"attnbench.execute.scopes"}  # the graph sees imports at all
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import():
    tree = ast.parse("def f():\n    from attnbench.b import x\n")
    other = ast.parse("import attnbench.a\n")
    known = {"attnbench.a", "attnbench.b"}
    graph = {"attnbench.a": _imports("attnbench.a", tree, known), "attnbench.b": _imports("attnbench.b", other, known)}
    assert _cycles(graph) == [["attnbench.a", "attnbench.b"]]


def test_instruments_import_neither_the_registry_nor_the_case():
    modules = _modules()
    for name, tree in modules.items():
        if name.startswith("attnbench.measure") and not name.startswith("attnbench.measure.machine"):
            imported = _imports(name, tree, set(modules))
            assert not imported & {"attnbench.methods.registry", "attnbench.plan.case",
                                   "attnbench.results.schema"}, name


def _special_cases(tree: ast.Module) -> list[str]:
    """Places that name a metric to treat it apart: get_metric("x"), "x" in ....metrics,
    metrics=("x", ...), m.name == "x"."""
    def named(node) -> bool:
        return isinstance(node, ast.Constant) and node.value in METRIC_NAMES

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "get_metric":
            found += [f"line {node.lineno}: get_metric({a.value!r})" for a in node.args if named(a)]
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            text = ast.unparse(node)
            if any(named(o) for o in operands) and ("metric" in text or ".name" in text):
                found.append(f"line {node.lineno}: {text}")
        if isinstance(node, ast.keyword) and node.arg == "metrics":
            found += [f"line {node.lineno}: metrics={ast.unparse(node.value)}" for c in ast.walk(node.value)
                      if named(c)]
    return found


def test_no_module_outside_metrics_special_cases_a_metric_by_name():
    assert METRIC_NAMES >= {"time", "flops", "memory", "error", "sparsity", "fvcore"}
    offenders = {name: places for name, tree in _modules().items()
                 if not name.startswith("attnbench.metrics") and (places := _special_cases(tree))}
    assert offenders == {}
    assert _special_cases(ast.parse('if "time" in options.metrics:\n    pass\n'))  # the check can fail


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scenarios").glob("*.py")))
def test_every_measuring_script_imports_against_the_current_library(script):
    """The scripts behind reports/measured/ are not run by the suite: importing each one at least
    catches a name the library retired."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"scenario_{script[:-3]}", ROOT / "scenarios" / script)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
