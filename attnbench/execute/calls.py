"""A case's inputs and its one measured call, shared by the runner, the model scope and
show-pattern."""

from __future__ import annotations

from typing import Callable

import torch

from attnbench.plan.case import Case


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """q, k, v for the case (drawn on the CPU so every device sees the same values), and the
    generator the method draws its own randomness from."""
    generator = torch.Generator().manual_seed(case.seed)
    shape = case.shape
    if case.inputs.startswith("capture:"):
        from attnbench.hf.capture import layer_tensors
        from attnbench.plan.sources import capture_path

        tensors = layer_tensors(capture_path(case.inputs), case.capture, case.layer)[:3]
    elif case.inputs == "random":
        tensors = [torch.randn(dims, generator=generator) * case.input_scale for dims in
                   ((shape.batch, shape.heads, shape.q_len, shape.head_dim),
                    *[(shape.batch, shape.keys_heads, shape.seq_len, shape.head_dim)] * 2)]
    else:
        from attnbench.execute.inputs import transformer_qkv

        q, k, v = transformer_qkv(case.inputs, case.batch, case.heads, case.seq_len, case.head_dim, layer=case.layer,
                                  seed=case.seed)
        tensors = (q[:, :, case.seq_len - shape.q_len:], k, v)  # the queries are the last positions
    q, k, v = (t.to(case.device, getattr(torch, case.dtype)).contiguous() for t in tensors)
    return q, k, v, generator


def trainable(fn: Callable) -> list[torch.Tensor]:
    """The method's own trainable weights (SBM's cluster embeddings, a convolution), also when
    its function is wrapped to repeat grouped k, v."""
    from attnbench.methods.contract import RepeatedKV

    own = fn.fn if isinstance(fn, RepeatedKV) else fn
    return [p for p in own.parameters() if p.requires_grad] if isinstance(own, torch.nn.Module) else []


def make_call(fn: Callable, q, k, v, mode: str) -> Callable[[], object]:
    """A zero-argument call: forward under no_grad, or forward + backward to every input."""
    if mode == "forward":
        def forward():
            with torch.no_grad():
                return fn(q, k, v)
        return forward
    inputs = [t.requires_grad_() for t in (q, k, v)] + trainable(fn)
    grad_out = torch.randn_like(q)

    def forward_backward():
        # .backward(inputs=...) rather than autograd.grad: FlopCounterMode's module tracker
        # cannot follow autograd.grad through an nn.Module.
        for t in inputs:
            t.grad = None
        fn(q, k, v).backward(grad_out, inputs=inputs)
        return [t.grad for t in inputs]
    return forward_backward


def make_backward(fn: Callable, q, k, v) -> Callable[[], object]:
    """The backward pass alone, as attention-gym times it: one forward is run now and its graph
    kept; each call runs that graph's backward again (retain_graph) on one fixed upstream gradient."""
    inputs = [t.requires_grad_() for t in (q, k, v)] + trainable(fn)
    out = fn(q, k, v)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.device, out.dtype)

    def backward():
        for t in inputs:
            t.grad = None
        out.backward(grad_out, retain_graph=True, inputs=inputs)
        return [t.grad for t in inputs]
    return backward
