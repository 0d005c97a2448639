from dataclasses import dataclass

import pytest

from attnbench.errors import AttnbenchError
from attnbench.registry import Method, create_method, get_method, list_methods, param, register


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
