"""Swap a method into a Hugging Face model and see what it does to the model's outputs.

`attnbench swap MODEL -m METHOD` makes cases of scope "swap": the model runs end to end with the
method in place of its attention in every layer (or `--layers`), through attnbench.hf.seam's seam,
and the usual passes measure the whole forward (FLOPs, peak memory, time) while the swap metric
(attnbench.metrics.swap) compares its outputs with the unmodified model's on the same tokens.
A case's shape (heads, kv heads, head_dim, causal, length) is the model's, read off a probe
forward, so a method that cannot take it is an `unsupported` row, never a substitute. Each layer
keeps its own sliding window and soft-capping (Gemma 2 alternates windowed and global layers); the
row records the model's window (of the layers that have one) and soft-capping.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from attnbench.errors import AttnbenchError
from attnbench.methods.contract import Shape, Unsupported
from attnbench.plan.case import Case
from attnbench.plan.scopes import SWAP

DEFAULT_METRICS = ("flops", "memory", "time", "swap")


def _tokens(case: Case) -> str:
    """The token source of a swap case's `inputs` (text:FILE, text:bundled, ids)."""
    return case.inputs.removeprefix("text:")


@functools.lru_cache(maxsize=4)
def model_shape(model: str, source: str, seq: int | None, seed: int) -> tuple[Shape, int]:
    """(the shape of the model's attention calls, the number of layers), from one forward; every
    layer must have the same shape and a full or causal mask. The shape's window and softcap are
    those of the layers that have one (each layer runs with its own: Swapped)."""
    from attnbench.hf.seam import intercept, load, token_ids

    loaded = load(model, seed)
    ids = token_ids(loaded, source, seq, seed)
    shapes: list[Shape] = []

    def probe(call, original):
        if call.mask is None:
            raise AttnbenchError(f"layer {call.index} of {model}: {call.unsupported}; swap replaces full and causal "
                                 "attention, with or without a sliding window and soft-capping")
        b, h, q_len, d = call.q.shape
        kv_heads, n = call.k.shape[1], call.k.shape[-2]
        shapes.append(Shape(b, h, n, d, None if kv_heads == h else kv_heads, None if q_len == n else q_len,
                            call.mask == "causal", call.window, softcap=call.softcap))
        return original()

    with torch.no_grad(), intercept(loaded, probe) as forward:
        forward(input_ids=ids)
    if not shapes:
        raise AttnbenchError(f"{loaded.architecture} made no attention call through transformers' AttentionInterface")
    plain = {dataclasses.replace(shape, window=None, softcap=None) for shape in shapes}
    if len(plain) > 1:
        raise AttnbenchError(f"the attention layers of {model} differ in shape ({shapes[0]} and others): swap "
                             "takes models whose layers share one shape")
    options = {}
    for name in ("window", "softcap"):
        values = {getattr(shape, name) for shape in shapes} - {None}
        if len(values) > 1:
            raise AttnbenchError(f"the layers of {model} have {len(values)} different {name}s ({sorted(values)}): "
                                 "swap records one")
        options[name] = values.pop() if values else None
    return dataclasses.replace(plain.pop(), **options), len(shapes)


def swap_cases(model: str, methods: Sequence[str], params: Mapping[str, Sequence[Any]] | None = None, *,
               text: str | None = None, seq: int | None = None, layers: str | None = None, seed: int = 0,
               threads: int | None = None, device: str | None = None, dtype: str | None = None) -> list[Case]:
    """Validated swap cases: one per method and parameter set, on the model's own shape."""
    from attnbench.hf.capture import parse_layers
    from attnbench.hf.seam import load, token_source
    from attnbench.plan.case import make_cases

    loaded = load(model, seed)
    chosen = parse_layers(layers, loaded.layers)
    source = token_source(text, seq)
    shape, calls = model_shape(model, source, seq, seed)
    swapped = "all" if layers is None else ",".join(str(i) for i in chosen)
    if max(chosen) >= calls:
        raise AttnbenchError(f"--layers {layers}: {model} made {calls} attention calls")
    cases = make_cases(methods, [shape.seq_len], params, batch=shape.batch, heads=shape.heads, head_dim=shape.head_dim,
                       kv_heads=shape.kv_heads, causal=shape.causal, window=shape.window, softcap=shape.softcap,
                       seed=seed, threads=threads, device=device, dtype=dtype)
    return [dataclasses.replace(c, scope=SWAP, inputs=f"text:{source}" if source != "ids" else "ids", model=model,
                                swap_layers=swapped) for c in cases]


@dataclass
class Swapped:
    """The model with the method in its layers' attention: calling it runs the forward; the
    unmodified model's outputs on the same tokens are `reference`."""

    loaded: Any
    ids: torch.Tensor
    layers: frozenset[int] | None  # None: every layer
    method: Any
    case: Case
    device: torch.device
    dtype: torch.dtype
    built: dict

    def _attend(self, call, original):
        if self.layers is not None and call.index not in self.layers:
            return original()
        if call.mask is None:
            raise Unsupported(f"layer {call.index}: {call.unsupported}")
        fn = self.built.get(call.index)
        if fn is None:  # built once per layer, in the warm-up call, with a draw of its own
            b, h, q_len, d = call.q.shape
            shape = dataclasses.replace(self.case.shape, seq_len=call.k.shape[-2],
                                        q_seq_len=None if q_len == call.k.shape[-2] else q_len,
                                        window=call.window, softcap=call.softcap)  # the layer's own
            refused = self.method.unsupported(shape, "forward")
            if refused:
                raise Unsupported(refused)
            generator = torch.Generator().manual_seed(self.case.seed * 1000 + call.index)
            fn = self.built[call.index] = self.method.make(shape, device=self.device, dtype=self.dtype,
                                                           generator=generator)
        return fn(call.q, call.k, call.v)

    def __call__(self):
        from attnbench.hf.seam import intercept

        with torch.no_grad(), intercept(self.loaded, self._attend) as forward:
            return forward(input_ids=self.ids, output_hidden_states=True)

    reference: Any = None  # the unmodified float32 model's outputs on the same tokens


def prepare_swap(case: Case, method, device: torch.device, dtype: torch.dtype) -> Swapped:
    """The swapped model of a case, on its device and dtype (the runner's scope 'swap'). The
    reference is the unmodified model in float32, whatever the case's dtype: the error of a
    bfloat16 case includes what bfloat16 costs, as it does for a user who ships it."""
    from attnbench.hf.seam import load, token_ids, unmodified

    loaded = load(case.model, case.seed)
    loaded.restore_float32(device)  # a previous case may have cast the cached model
    ids = token_ids(loaded, _tokens(case), case.seq_len, case.seed).to(device)
    with torch.no_grad():
        reference = unmodified(loaded, input_ids=ids, output_hidden_states=True)
    loaded.model.to(dtype=dtype)  # the cached model follows the case
    layers = None if case.swap_layers in (None, "all") else frozenset(int(i) for i in case.swap_layers.split(","))
    return Swapped(loaded, ids, layers, method, case, device, dtype, {}, reference)
