"""The shape of the code: no import cycle inside attnbench, instruments that know neither the
registry nor a case, no module outside attnbench/metrics/ that special-cases a metric by name, and
measuring scripts that still import."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "attnbench"
METRIC_NAMES = {path.stem for path in (PACKAGE / "metrics").glob("*.py") if path.stem != "__init__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
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


def test_no_import_cycle_inside_attnbench():
    modules = _modules()
    graph = {name: _imports(name, tree, set(modules)) for name, tree in modules.items()}
    assert graph["attnbench.runner"] >= {"attnbench.calls"}  # the graph sees imports at all
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
        if name.startswith("attnbench.measure"):
            imported = _imports(name, tree, set(modules))
            assert not imported & {"attnbench.registry", "attnbench.case", "attnbench.schema"}, name


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
