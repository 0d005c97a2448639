"""A case is one measurement: a method with fixed parameters on one input shape and set-up."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from attnbench.errors import AttnbenchError
from attnbench.options import parse_dtype, parse_mode
from attnbench.registry import Method, Shape, create_method, get_method


@dataclass(frozen=True)
class Case:
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)  # every parameter, defaults included
    batch: int = 1
    heads: int = 4
    seq_len: int = 1024
    head_dim: int = 64
    dtype: str = "float32"
    device: str = "cpu"
    mode: str = "forward"  # "backward" times forward + backward
    seed: int = 0
    threads: int = 1
    inputs: str = "random"  # random, pretrained or init (attnbench.inputs)
    input_scale: float = 1.0  # random inputs: standard deviation
    layer: int = 2  # pretrained/init inputs: the model layer whose q, k, v are taken

    @property
    def shape(self) -> Shape:
        return Shape(self.batch, self.heads, self.seq_len, self.head_dim)

    def instance(self) -> Method:
        return create_method(self.method, **self.params)

    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params.items())
        return f"{self.method}{extra} n={self.seq_len}"


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' that exists here; anything else is a one-line error."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise AttnbenchError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise AttnbenchError(f"--device {device}: no CUDA device is visible here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise AttnbenchError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise AttnbenchError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return str(dev)


def _param_grids(methods: Sequence[str], params: Mapping[str, Sequence[Any]]) -> dict[str, list[dict]]:
    """Per method, the cartesian product of the grids it declares (the rest do not apply to it)."""
    declared = {m: {p.name for p in get_method(m).params()} for m in methods}
    for name in params:
        if not any(name in d for d in declared.values()):
            valid = ", ".join(sorted(set().union(*declared.values()))) or "none"
            raise AttnbenchError(f"no selected method has a parameter {name!r}; their parameters: {valid}")
    grids = {}
    for m in methods:
        mine = {k: list(v) for k, v in params.items() if k in declared[m]}
        grids[m] = [dict(zip(mine, combo)) for combo in itertools.product(*mine.values())]
    return grids


def make_cases(methods: Iterable[str], seq_lens: Iterable[int], params: Mapping[str, Sequence[Any]] | None = None,
               *, batch: int = 1, heads: int = 4, head_dim: int = 64, dtype: str = "float32",
               device: str = "cpu", mode: str = "forward", seed: int = 0, threads: int | None = None,
               inputs: str = "random", input_scale: float = 1.0, layer: int = 2) -> list[Case]:
    """Validated cartesian product of methods x parameter grids x sequence lengths."""
    import torch

    methods, seq_lens = list(methods), list(seq_lens)
    if not methods or not seq_lens:
        raise AttnbenchError("give at least one method and one sequence length")
    for what, value in (("batch", batch), ("heads", heads), ("head_dim", head_dim), *(("seq", n) for n in seq_lens)):
        if not isinstance(value, int) or value <= 0:
            raise AttnbenchError(f"{what} must be a positive whole number, not {value!r}")
    from attnbench.inputs import SOURCES, check_source

    if inputs not in SOURCES:
        raise AttnbenchError(f"--inputs must be one of {', '.join(SOURCES)}, not {inputs!r}")
    check_source(inputs, heads, head_dim, layer)
    if not input_scale > 0:
        raise AttnbenchError(f"--input-scale must be positive, not {input_scale!r}")
    common = dict(inputs=inputs, input_scale=float(input_scale), layer=layer,
                  batch=batch, heads=heads, head_dim=head_dim, dtype=parse_dtype(dtype),
                  device=check_device(device), mode=parse_mode(mode), seed=seed,
                  threads=threads or torch.get_num_threads())
    cases = []
    for method, grid in _param_grids(methods, params or {}).items():
        for chosen in grid:
            instance = create_method(method, **chosen)  # validates names, types and ranges
            full_params = {p.name: getattr(instance, p.name) for p in instance.params()}
            cases += [Case(method, full_params, seq_len=n, **common) for n in seq_lens]
    return cases
