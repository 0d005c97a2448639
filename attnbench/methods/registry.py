"""The method registry: names to method classes, loaded only when a method is used.

Names come from three places, all known without importing a method (so a misspelt name fails
before torch loads): the built-in index in `attnbench.methods`, the peers whose package is
installed, and the entry points of the group `attnbench.methods` (`name = "pkg.module:Class"`).
A method can also be named as `module:Class` on the command line, or registered from Python with
`@register("name")`. The registry imports the methods; the methods import only the contract.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
from typing import Any, Callable

from attnbench.errors import AttnbenchError
from attnbench.methods.contract import Capabilities, Method, ParamSpec, Shape, param  # noqa: F401  (the public names)

ENTRY_POINT_GROUP = "attnbench.methods"
REGISTRY: dict[str, type[Method]] = {}  # loaded classes, by name


def _add(name: str, cls: type[Method]) -> type[Method]:
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"{getattr(cls, '__name__', cls)!r} must subclass attnbench.Method")
    cls.name = name
    REGISTRY[name] = cls
    return cls


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator for methods defined in your own code: `@register("mine")`."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in REGISTRY or name in _index():
            raise ValueError(f"method {name!r} is registered twice")
        return _add(name, cls)

    return wrap


def _index() -> dict[str, str]:
    """Every known name -> 'module:attribute' of its class (nothing imported)."""
    from importlib.metadata import entry_points

    from attnbench.methods import BUILTIN, PEERS

    known = {name: f"attnbench.methods.{where}" for name, where in BUILTIN.items()}
    known.update({name: f"attnbench.methods.{where}" for name, (package, where, _) in PEERS.items()
                  if importlib.util.find_spec(package) is not None})
    for point in entry_points(group=ENTRY_POINT_GROUP):
        known.setdefault(point.name, point.value)
    return known


def list_methods(pattern: str = "*") -> list[str]:
    """Known method names matching a shell-style wildcard, sorted."""
    names = set(_index()) | set(REGISTRY)
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def missing_peers() -> dict[str, str]:
    """Peers whose package is not installed: name -> what to install."""
    from attnbench.methods import PEERS

    return {name: f"{package} is not installed: {hint}" for name, (package, _, hint) in PEERS.items()
            if importlib.util.find_spec(package) is None}


def check_names(names: list[str]) -> None:
    """Fail on an unknown name without importing any method (a `module:Class` is checked on load)."""
    known = set(_index()) | set(REGISTRY)
    for name in names:
        if name in missing_peers():
            raise AttnbenchError(f"{name} runs another package's kernel, and {missing_peers()[name]}")
        if name not in known and ":" not in name:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise AttnbenchError(f"unknown method {name!r}; {hint}run 'attnbench list' to see all methods")


def _load(reference: str, name: str) -> type[Method]:
    """`pkg.module:Class` -> the Method subclass it names (or that calling it returns)."""
    module_name, _, attribute = reference.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise AttnbenchError(f"cannot load method {name!r} ({reference}): {type(exc).__name__}: {exc}; give an "
                             "importable module:attribute whose module is on PYTHONPATH") from None
    if not (isinstance(found, type) and issubclass(found, Method)) and callable(found):
        found = found()
    if not (isinstance(found, type) and issubclass(found, Method)):
        raise AttnbenchError(f"{reference} is not a method: it must be (or return) a subclass of attnbench.Method")
    return found


def get_method(name: str) -> type[Method]:
    """The class registered as `name`; an unknown name is an error that suggests close names."""
    if name in REGISTRY:
        return REGISTRY[name]
    reference = _index().get(name) or (name if ":" in name else None)
    if reference is None:
        check_names([name])
    cls = _load(reference, name)
    if cls.name and cls.name in REGISTRY and REGISTRY[cls.name] is cls:
        REGISTRY[name] = cls  # one class under two names (an entry point and module:Class)
        return cls
    return _add(name, cls)


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
        try:
            typed[key] = specs[key].coerce(name, value)
        except ValueError as exc:
            raise AttnbenchError(str(exc)) from None
    return cls(**typed)
