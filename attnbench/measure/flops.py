"""FLOPs counted by execution (FlopCounterMode) and by tracing (fvcore), multiply-add = 2.

What `flops` counts: matmul-class work, the quantity attention papers and our analytic formulas
report: dense matmuls (mm, bmm, addmm, baddbmm), fused attention kernels, and sparse matmuls by
their stored entries (nnz), never as dense. Softmax, exp, elementwise arithmetic, reductions,
gather/index/scatter and random draws are not counted; a method must express its dot products as
matmul-class ops (matmul, einsum, bmm, sparse kernels) for them to count.

torch 2.13 lacks formulas for CPU SDPA (it counts 0) and for sparse kernels (0, or dense for
`csr @ dense`), and its rules for the fused CUDA kernels count every pair of a causal call and
assume one key head per query head; `EXTRA_FORMULAS` adds or replaces them (causal: the pairs at
or below the kernel's diagonal). fvcore traces one forward call with TorchScript and
counts a multiply-add as 1, so its total is doubled; ops it drops are reported by name.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def attention_pairs(q_len: int, k_len: int, causal: bool, bottom_right: bool) -> int:
    """Query-key pairs a fused kernel scores per (batch, head): all of them, or under a causal
    mask those at or below its diagonal (aligned to the top left or to the bottom right)."""
    if not causal:
        return q_len * k_len
    short = min(q_len, k_len)
    triangle = short * (short + 1) // 2
    if bottom_right:  # extra queries see no key; extra keys are seen by every query
        return triangle + (q_len * (k_len - q_len) if k_len > q_len else 0)
    return triangle + (k_len * (q_len - k_len) if q_len > k_len else 0)  # extra queries see every key


def _fused(query, key, value, causal: bool, bottom_right: bool = False, backward: bool = False) -> int:
    """Q K^T and P V over the pairs scored, with query heads counted (grouped k, v are shared,
    not repeated: the work per query head is the same); the backward recomputes Q K^T and runs
    four gradient matmuls (torch's rule: 2.5x the forward)."""
    batch, heads, q_len, head_dim = query
    pairs = attention_pairs(q_len, key[-2], causal, bottom_right)
    scores, values = 2 * batch * heads * pairs * head_dim, 2 * batch * heads * pairs * value[-1]
    return 3 * scores + 2 * values if backward else scores + values


def _flag(args: tuple, kwargs: dict, position: int, name: str = "is_causal") -> bool:
    return bool(kwargs.get(name, args[position] if len(args) > position else False))


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (dropout_p, is_causal, attn_mask, scale): is_causal aligns to the top left; a lower-right
    # mask arrives as attn_mask, whose masked scores the kernel still computes
    return _fused(query, key, value, _flag(args, kwargs, 1))


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (out, logsumexp, dropout_p, is_causal, attn_mask, scale)
    return _fused(query, key, value, _flag(args, kwargs, 3), backward=True)


def _cuda_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (dropout_p, is_causal, ...): flash's causal is aligned to the bottom right
    return _fused(query, key, value, _flag(args, kwargs, 1), bottom_right=True)


def _cuda_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (out, logsumexp, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal, ...)
    return _fused(query, key, value, _flag(args, kwargs, 7), bottom_right=True, backward=True)


def _cuda_efficient(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (attn_bias, compute_log_sumexp, dropout_p, is_causal, scale): top-left causal
    return _fused(query, key, value, _flag(args, kwargs, 3))


def _cuda_efficient_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (attn_bias, out, logsumexp, philox_seed, philox_offset, dropout_p, grad_input_mask, is_causal, ...)
    return _fused(query, key, value, _flag(args, kwargs, 7), backward=True)


def _cuda_cudnn(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (attn_bias, compute_log_sumexp, dropout_p, is_causal, ...): top-left causal
    return _fused(query, key, value, _flag(args, kwargs, 3))


def _cuda_cudnn_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    # (out, logsumexp, philox_seed, philox_offset, attn_bias, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal)
    return _fused(query, key, value, _flag(args, kwargs, 10), backward=True)


def _nnz(t: torch.Tensor) -> int:
    return t._nnz() if t.layout != torch.strided else t.numel()


def _is_sparse(*tensors: torch.Tensor) -> bool:
    return any(isinstance(t, torch.Tensor) and t.layout != torch.strided for t in tensors)


def _mm(a, b, *args, out_val=None, **kwargs) -> int:
    if _is_sparse(a, b):  # only the stored entries are multiplied
        sparse, dense_cols = (a, b.shape[-1]) if a.layout != torch.strided else (b, a.shape[0])
        return 2 * _nnz(sparse) * dense_cols
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _sparse_addmm(bias, a, b, *args, out_val=None, **kwargs) -> int:
    return 2 * _nnz(a) * b.shape[-1]


def _sampled_addmm(bias, a, b, *args, out_val=None, **kwargs) -> int:
    return 2 * _nnz(bias) * a.shape[-1]  # one dot product of length k per sampled entry


for _fn in (_mm, _sparse_addmm, _sampled_addmm):
    _fn._get_raw = True  # FlopCounterMode then passes tensors (for nnz), not shapes

EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
    # torch's own rules for the CUDA kernels ignore is_causal and grouped kv heads
    aten._scaled_dot_product_flash_attention: _cuda_flash,
    aten._scaled_dot_product_flash_attention_backward: _cuda_flash_backward,
    aten._scaled_dot_product_efficient_attention: _cuda_efficient,
    aten._scaled_dot_product_efficient_attention_backward: _cuda_efficient_backward,
    aten._scaled_dot_product_cudnn_attention: _cuda_cudnn,
    aten._scaled_dot_product_cudnn_attention_backward: _cuda_cudnn_backward,
    aten.mm: _mm,
    aten._sparse_addmm: _sparse_addmm,
    aten.sparse_sampled_addmm: _sampled_addmm,
}


def count_flops(call: Callable[[], object]) -> tuple[int, dict[str, int]]:
    """Run `call` once under FlopCounterMode: (total FLOPs, FLOPs per aten op)."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS) as counter:
        call()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


class _StageCounter(FlopCounterMode):
    """FlopCounterMode that also adds each op's count to the stage the op runs in (a recorder of
    attnbench.measure.stages), so the stages' counts sum to the total exactly."""

    def __init__(self, recorder, **kwargs) -> None:
        super().__init__(**kwargs)
        self.recorder, self.by_stage = recorder, Counter()

    def _count_flops(self, func_packet, out, args, kwargs):
        counts = self.flop_counts["Global"]
        before = counts[func_packet]
        out = super()._count_flops(func_packet, out, args, kwargs)
        if counts[func_packet] != before:
            self.by_stage[self.recorder.current()] += counts[func_packet] - before
        return out


def count_flops_by_stage(call: Callable[[], object]) -> tuple[int, dict[str, int], dict[str, int]]:
    """`count_flops`, and the FLOPs of each stage the call's method declares (attnbench.methods.contract
    .stage), in the order the stages ran, then those outside every stage (OTHER) when there are any."""
    from attnbench.measure.stages import OTHER, recording

    with recording() as recorder, _StageCounter(recorder, display=False, custom_mapping=EXTRA_FORMULAS) as counter:
        call()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    order = [*recorder.seen, OTHER]
    by_stage = {name: int(counter.by_stage.get(name, 0)) for name in order if name != OTHER or counter.by_stage[OTHER]}
    return int(counter.get_total_flops()), by_op, by_stage


def _fvcore_sdpa(inputs, outputs) -> int:
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(inputs[i]) for i in range(3))
    rows = 1
    for size in q[:-2]:
        rows *= size
    return rows * q[-2] * k[-2] * (q[-1] + v[-1])  # MACs of Q K^T and P V


class _Traced(torch.nn.Module):
    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def fvcore_flops(fn: Callable, *inputs: torch.Tensor) -> tuple[int | None, str]:
    """fvcore's forward count x2, and the ops it skipped ('aten::softmax x1; ...').

    A cross-check must not sink the case: if fvcore cannot trace the call (sparse tensors,
    for one), the count is None and the second value says why.
    """
    try:
        return _fvcore_flops(fn, inputs)
    except Exception as exc:  # fvcore/TorchScript raise many kinds on code they cannot trace
        return None, f"fvcore could not trace this method: {type(exc).__name__}: {exc}".splitlines()[0][:300]


def _fvcore_flops(fn, inputs):
    with warnings.catch_warnings():
        # `import fvcore.nn` runs torch.jit.script, deprecated in torch >= 2.11.
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        analysis = FlopCountAnalysis(_Traced(fn), tuple(inputs))
        analysis.set_op_handle("aten::scaled_dot_product_attention", _fvcore_sdpa)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = 2 * int(analysis.total())
        skipped = Counter(analysis.unsupported_ops())
    return total, "; ".join(f"{op} x{n}" for op, n in sorted(skipped.items()))
