from dataclasses import dataclass

import pytest

from attnbench.errors import AttnbenchError
from attnbench.methods.contract import Method, param
from attnbench.methods.registry import create_method, get_method, list_methods, register


def test_builtin_methods_are_listed():
    assert {"full", "full-explicit"} <= set(list_methods())
    assert list_methods("full-*") == ["full-explicit"]


def test_unknown_method_suggests_close_names():
    with pytest.raises(AttnbenchError, match="did you mean full"):
        get_method("fulll")


def test_parameters_are_typed_validated_and_listed(temp_method):
    @register(temp_method("toy-knobs"))
    @dataclass(frozen=True)
    class Toy(Method):
        features: int = param(128, "landmarks", low=1)
        gamma: float = param(0.1, "regulariser", low=0)
        init: str = param("original", "init rule", choices=("original", "exact"))

    made = create_method("toy-knobs", features="64", gamma="0.5", init="exact")
    assert (made.features, made.gamma, made.init) == (64, 0.5, "exact")
    assert create_method("toy-knobs", features=None).features == 128  # None keeps the default
    with pytest.raises(AttnbenchError, match=r"no parameter 'landmarks'.*features \(int>=1, default 128\)"):
        create_method("toy-knobs", landmarks=3)
    for bad in ({"features": "0"}, {"features": "2.5"}, {"gamma": "-1"}, {"init": "razavi"}, {"features": "x"}):
        with pytest.raises(AttnbenchError, match="must be"):
            create_method("toy-knobs", **bad)


def test_duplicate_registration_is_refused(temp_method):
    with pytest.raises(ValueError, match="twice"):
        register("full")(type("Again", (Method,), {}))


def _attnbench_imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    found |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return {name for name in found if name.startswith("attnbench")}


@pytest.mark.slow
def test_the_contract_is_a_leaf_and_methods_import_only_the_contract():
    import subprocess
    import sys
    from pathlib import Path

    import attnbench.methods
    import attnbench.methods.contract

    assert _attnbench_imports(Path(attnbench.methods.contract.__file__)) == {"attnbench.methods.shape"}
    assert _attnbench_imports(Path(attnbench.methods.contract.__file__).with_name("shape.py")) == set()
    for path in Path(attnbench.methods.__file__).parent.glob("*.py"):
        if path.name == "registry.py":  # the registry finds the methods: it may say why it cannot
            assert _attnbench_imports(path) <= {"attnbench.errors", "attnbench.methods.contract", "attnbench.methods"}
            continue
        assert all(name == "attnbench.methods.contract" or name.startswith("attnbench.methods")
                   for name in _attnbench_imports(path)), path.name
    probe = ("import sys, attnbench.methods.full, attnbench.methods.sbm; "
             "assert 'attnbench.methods.registry' not in sys.modules, 'a method imported the registry'")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_names_are_known_without_importing_methods():
    import subprocess
    import sys

    probe = ("import sys; from attnbench.methods.registry import list_methods, check_names; "
             "assert {'full', 'skyformer', 'sbm', 'smartbird'} <= set(list_methods()); check_names(['full']); "
             "assert 'torch' not in sys.modules and 'attnbench.methods.full' not in sys.modules")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_optional_hooks_have_defaults_that_say_nothing():
    import torch

    from attnbench.methods.contract import Shape

    method = create_method("linear")
    fn = method.build(Shape(1, 1, 8, 4), device=torch.device("cpu"), dtype=torch.float32, generator=None)
    q = torch.randn(1, 1, 8, 4)
    assert method.mask(fn, q, q) is None and method.diagnostics(fn, q, q, q) == {} and method.sampler(fn) is None
