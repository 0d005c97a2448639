"""Attention inside a model: the `layer` and `model` scopes.

- `layer`: one pre-LN Transformer encoder layer, x + out(attention(q(LN x), k(LN x), v(LN x))),
  then x + FFN(LN x) with a GELU; width = heads x head_dim.
- `model`: the LRA encoder all three founding papers' code uses (the mlpen LRA harness): token
  embedding (vocab 512) plus learned positions (std 0.02), `layers` (2) such layers of width 64,
  FFN 128, 2 heads of 32, a final LayerNorm, mean pooling and a linear classifier (10 classes).
  Dropout (0.1 in the papers) is off while measuring, so every method sees the same arithmetic.

Every registered method plugs in unchanged: each layer builds its own attention function (its
own draws and weights) and calls it on (batch, heads, n, head_dim) q, k, v. The attention runs
inside an `Attention` module, so FLOPs inside it are counted apart (`flops_attention`).

The network's parts are stages (attnbench profile), and the method's own stages nest under its
layer's attention: "layer/attention/landmarks", summed over the layers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from attnbench.methods.contract import RepeatedKV, stage
from attnbench.plan.scopes import ModelShape, model_shape


class Attention(nn.Module):
    """The method's attention function as a module (its own weights, if any, are trained).
    With `keep` set, it keeps the q, k, v of its next call (for the method's diagnostics)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        if isinstance(fn, RepeatedKV) and isinstance(fn.fn, nn.Module):
            self.method = fn.fn  # a method that repeats grouped k, v: its weights are still trained
        self.keep, self.kept = False, None

    def forward(self, q, k, v):
        if self.keep:
            self.kept = (q.detach(), k.detach(), v.detach())
        return self.fn(q, k, v)


class EncoderLayer(nn.Module):
    """The pre-LN layer; with kv_heads < heads its k and v projections are kv_heads x head_dim wide
    (grouped-query attention), and with a causal attention function it is a decoder layer."""

    def __init__(self, attention_fn, heads: int, head_dim: int, ffn_dim: int, kv_heads: int | None = None) -> None:
        super().__init__()
        width, kv_width = heads * head_dim, (kv_heads or heads) * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.norm_attention, self.norm_ffn = nn.LayerNorm(width), nn.LayerNorm(width)
        self.q, self.out = nn.Linear(width, width), nn.Linear(width, width)
        self.k, self.v = nn.Linear(width, kv_width), nn.Linear(width, kv_width)
        self.attention = Attention(attention_fn)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, width))

    def _split(self, x):
        b, n, width = x.shape
        return x.view(b, n, width // self.head_dim, self.head_dim).transpose(1, 2)

    def forward(self, x):
        with stage("layer"):
            with stage("norms"):
                h = self.norm_attention(x)
            with stage("projections"):
                q, k, v = self._split(self.q(h)), self._split(self.k(h)), self._split(self.v(h))
            with stage("attention"):
                attended = self.attention(q, k, v)
            b, _, n, _ = attended.shape
            with stage("projections"):
                x = x + self.out(attended.transpose(1, 2).reshape(b, n, -1))
            with stage("norms"):
                h = self.norm_ffn(x)
            with stage("feed-forward"):
                return x + self.ffn(h)


class Encoder(nn.Module):
    """The LRA classifier: embeddings, encoder layers, final LayerNorm, mean pooling, linear head."""

    def __init__(self, attention_fns, heads: int, head_dim: int, seq_len: int, shape: ModelShape,
                 kv_heads: int | None = None) -> None:
        super().__init__()
        width = heads * head_dim
        self.tokens = nn.Embedding(shape.vocab, width)
        self.positions = nn.Embedding(seq_len, width)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.layers = nn.ModuleList(EncoderLayer(fn, heads, head_dim, shape.ffn(width), kv_heads)
                                    for fn in attention_fns)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, shape.classes)

    def forward(self, ids, scored=None):
        """Logits: of each sequence (mean pooling), or, given `scored` (a bool mask of ids' shape: a
        token task), of the scored positions only, so the head over the vocabulary costs what the
        task asks."""
        with stage("embeddings"):
            x = self.tokens(ids) + self.positions.weight[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x)
        with stage("classifier"):
            x = self.norm(x)
            return self.classifier(x.mean(dim=1) if scored is None else x[scored])


def parameter_count(heads: int, head_dim: int, seq_len: int, shape: ModelShape, scope: str,
                    kv_heads: int | None = None) -> int:
    """Parameters of the layer or model around the attention (a method's own weights excluded)."""
    width, ffn = heads * head_dim, shape.ffn(heads * head_dim)
    kv_width = (kv_heads or heads) * head_dim
    layer = 2 * 2 * width + 2 * (width * width + width) + 2 * (width * kv_width + kv_width) + \
        (width * ffn + ffn) + (ffn * width + width)
    if scope == "layer":
        return layer
    return (shape.vocab + seq_len) * width + shape.layers * layer + 2 * width + width * shape.classes + shape.classes


def dense_flops(batch: int, seq_len: int, heads: int, head_dim: int, shape: ModelShape, scope: str,
                kv_heads: int | None = None) -> int:
    """Forward FLOPs of the matmuls around the attention (multiply-add = 2): q, k, v and output
    projections (k, v kv_heads wide) and the FFN per layer, and the classifier at model scope."""
    width, kv_width = heads * head_dim, (kv_heads or heads) * head_dim
    tokens = batch * seq_len
    layer = 2 * tokens * width * (2 * width + 2 * kv_width + 2 * shape.ffn(width))
    if scope == "layer":
        return layer
    return shape.layers * layer + 2 * batch * max(shape.predictions, 1) * width * shape.classes


def build_network(method, case_shape, scope: str, shape: ModelShape, *, device, dtype, generator) -> nn.Module:
    """The layer or model around `method`, its weights drawn from `generator` (through torch's
    global generator, forked so the caller's stream is left alone)."""
    layers = 1 if scope == "layer" else shape.layers
    fns = [method.make(case_shape, device=device, dtype=dtype, generator=generator) for _ in range(layers)]
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if scope == "layer":
            network = EncoderLayer(fns[0], case_shape.heads, case_shape.head_dim,
                                   shape.ffn(case_shape.heads * case_shape.head_dim), case_shape.kv_heads)
        else:
            network = Encoder(fns, case_shape.heads, case_shape.head_dim, case_shape.seq_len, shape,
                              case_shape.kv_heads)
    return network.to(device, dtype).eval()  # dropout off while measuring


@dataclass
class Prepared:
    """One case ready to measure: `fn(*inputs)` is what runs, `call()` runs it in the case's mode,
    `fresh_state()` drops what lives across calls (gradients, optimizer state) so a measured call
    allocates it anew."""

    fn: object
    inputs: tuple
    call: Callable[[], object]
    fresh_state: Callable[[], None] = lambda: None
    attentions: list = field(default_factory=list)  # the network's Attention modules (layer/model scope)
    backward: Callable | None = None  # makes the backward pass alone as a call (calls.make_backward)
    diagnostics: Callable[[], dict] = dict  # method-specific figures, e.g. an inverse's residual
    qkv: tuple = (None, None, None)  # attention scope: q, k, v


def _token_loss(network_output, labels):
    """Layer scope: each token's output read as logits over `width` classes; model scope: the classifier's."""
    return nn.functional.cross_entropy(network_output.reshape(-1, network_output.shape[-1]), labels.reshape(-1))


def mixed_precision(amp: str, device):
    """A context for the network's forward: autocast to `amp` on the device ('off': no autocast)."""
    if amp == "off":
        return contextlib.nullcontext
    return lambda: torch.autocast(torch.device(device).type, dtype=getattr(torch, amp))


def task_inputs(task, batch: int, seq_len: int, generator, *, vocab: int, pairs: int | None,
                device) -> tuple[tuple, torch.Tensor]:
    """A batch of a training task as the Encoder takes it: (ids,) and a class per sequence, or
    (ids, scored positions) and the label of each scored position (a token task)."""
    from attnbench.tasks import IGNORE

    ids, labels = task.batch(batch, seq_len, generator, vocab=vocab, pairs=pairs)
    ids, labels = ids.to(device), labels.to(device)
    if task.head == "pooled":
        return (ids,), labels
    scored = labels != IGNORE
    return (ids, scored), labels[scored]


def _network_inputs(case, shape: ModelShape, *, device, dtype, generator) -> tuple[tuple, torch.Tensor]:
    """Seeded inputs and labels: real-valued tokens and per-token labels at layer scope, token ids
    and one class per sequence at model scope, or a batch of the case's training task."""
    width = case.heads * case.head_dim
    if case.train_task:
        from attnbench.tasks import get_task

        return task_inputs(get_task(case.train_task), case.batch, case.seq_len, generator, vocab=shape.vocab,
                           pairs=case.pairs, device=device)
    if case.scope == "layer":
        inputs = (torch.randn(case.batch, case.seq_len, width, generator=generator).to(device, dtype),)
        labels = torch.randint(0, width, (case.batch, case.seq_len), generator=generator).to(device)
    else:
        inputs = (torch.randint(0, shape.vocab, (case.batch, case.seq_len), generator=generator).to(device),)
        labels = torch.randint(0, shape.classes, (case.batch,), generator=generator).to(device)
    return inputs, labels


def _optimizer_step(optimizer, scaler) -> None:
    with stage("optimizer step"):
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()


def prepare_network(case, method, *, device, dtype, generator) -> Prepared:
    """The case's layer or model, its seeded inputs (real-valued at layer scope, token ids at model
    scope) and random labels, and its call: forward (no_grad; inference_mode at model scope, as SBM's
    Table 3), backward (forward, cross-entropy, backward) or train (that, then an AdamW step on an
    optimizer whose state the warm-up call creates)."""
    shape = model_shape(case)
    attention_shape = case.shape  # the case's causality and kv heads; q_seq is attention scope only
    network = build_network(method, attention_shape, case.scope, shape, device=device, dtype=dtype,
                            generator=generator)
    inputs, labels = _network_inputs(case, shape, device=device, dtype=dtype, generator=generator)
    attentions = [m for m in network.modules() if isinstance(m, Attention)]
    mixed = mixed_precision(case.amp, device)
    if case.mode == "forward":
        context = torch.inference_mode if case.scope == "model" else torch.no_grad

        def forward():
            with context(), mixed():
                return network(*inputs)
        return Prepared(network, inputs, forward, attentions=attentions)
    if case.scope == "layer":
        inputs[0].requires_grad_()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4, eps=1e-6) if case.mode == "train" else None
    # float16's narrow range needs the loss scaled (and the step unscaled), as fp16 training does.
    scaler = torch.amp.GradScaler(torch.device(device).type) if case.amp == "float16" else None

    def loss_of_forward():
        with mixed():
            logits = network(*inputs)
            with stage("loss"):
                loss = _token_loss(logits, labels)
        return loss if scaler is None else scaler.scale(loss)

    def step():
        network.zero_grad(set_to_none=True)
        if case.scope == "layer":
            inputs[0].grad = None
        loss = loss_of_forward()
        loss.backward()
        if optimizer is not None:
            _optimizer_step(optimizer, scaler)
        return loss.detach()

    def fresh_state():
        network.zero_grad(set_to_none=True)
        if optimizer is not None:
            optimizer.state.clear()  # AdamW allocates its two moments on the next step

    def backward():
        """The loss's backward alone: one forward kept, its graph retained (no optimizer step)."""
        loss = loss_of_forward()

        def again():
            network.zero_grad(set_to_none=True)
            if case.scope == "layer":
                inputs[0].grad = None
            loss.backward(retain_graph=True)
        return again

    return Prepared(network, inputs, step, fresh_state, attentions, backward)


def kept_inputs(attentions, call) -> list[tuple]:
    """Run `call` once; the q, k, v each Attention module saw, in layer order."""
    for module in attentions:
        module.keep = True
    try:
        call()
    finally:
        for module in attentions:
            module.keep = False
    kept = [module.kept for module in attentions]
    for module in attentions:
        module.kept = None
    return kept


def _own_view(method, fn, q, k, v) -> tuple:
    """(fn, q, k, v) as the method's hooks see them (k, v repeated for a method that repeats them)."""
    own, wide_k, wide_v = method.hook_view(fn, k, v)
    return own, q, wide_k, wide_v


def attention_diagnostics(method, attentions, call, mixed=contextlib.nullcontext) -> dict:
    """The method's diagnostics of each layer's attention call: `scores_computed` averaged over
    layers (so sparsity stays per attention call), the method's other figures from the first.
    `mixed` is the network's autocast (mixed_precision), under which its attention ran."""
    kept = kept_inputs(attentions, call)  # the call in its own mode (a training step needs gradients)
    with torch.no_grad(), mixed():
        found = [method.diagnostics(*_own_view(method, module.fn, *qkv)) for module, qkv in zip(attentions, kept)]
    out = dict(found[0]) if found else {}
    scores = [d["scores_computed"] for d in found if "scores_computed" in d]
    if scores:
        out["scores_computed"] = sum(scores) / len(scores)
    return out


def attention_flops(attentions, call, mode: str, mixed=contextlib.nullcontext) -> int:
    """FLOPs of the attention calls alone: each layer's attention function counted on the q, k, v
    it saw, forward, or forward and backward when the step has a backward pass. (FlopCounterMode's
    module hierarchy places backward ops only roughly, so the calls are counted by themselves.)"""
    from attnbench.execute.calls import make_call
    from attnbench.measure.flops import count_flops

    total = 0
    for module, qkv in zip(attentions, kept_inputs(attentions, call)):
        q, k, v = (t.clone() for t in qkv)
        once = make_call(module.fn, q, k, v, "forward" if mode == "forward" else "backward")

        def under_autocast(once=once):
            with mixed():
                return once()
        total += count_flops(under_autocast)[0]
    return total
