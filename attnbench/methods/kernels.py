"""Fused attention kernels from other packages, as peers: `peer-flash-attn` (Dao-AILab's
flash-attn, `flash_attn_func`) and `peer-xformers` (xFormers' `memory_efficient_attention`).

Both take (batch, seq_len, heads, head_dim): our (batch, heads, seq_len, head_dim) tensors are
handed over as transposed views (no copy; the last dimension stays contiguous) and the output is
transposed back. A case a kernel cannot run (CPU, a dtype or head_dim it lacks) is 'unsupported'
with the package's own reason. FLOPs and memory formulas are those of SDPA's fused kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnbench.methods.contract import OneStage, Unsupported
from attnbench.methods.full import Full
from attnbench.methods.sdpa import probe


def _transposed(kernel):
    def attention(q, k, v):
        return kernel(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    return attention


def _probe(fn, name: str, shape, device, dtype) -> None:
    try:
        probe(fn, shape, device, dtype)  # its backward too when the case takes one
    except (RuntimeError, NotImplementedError, ValueError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unsupported(f"{name} cannot run this case: {first}") from None


@dataclass(frozen=True)
class PeerFlashAttn(Full):
    """flash-attn's flash_attn_func (CUDA; float16 and bfloat16)."""

    paper = "Dao 2023, FlashAttention-2, arXiv:2307.08691; github.com/Dao-AILab/flash-attention"

    def build(self, shape, *, device, dtype, generator):
        from flash_attn import flash_attn_func

        fn = _transposed(flash_attn_func)
        _probe(fn, self.name, shape, device, dtype)
        return OneStage(fn, "fused kernel")


@dataclass(frozen=True)
class PeerXformers(Full):
    """xFormers' memory_efficient_attention (the operator it dispatches to is its own choice)."""

    paper = "Lefaudeux et al. 2022, xFormers; github.com/facebookresearch/xformers"

    def build(self, shape, *, device, dtype, generator):
        from xformers.ops import memory_efficient_attention

        fn = _transposed(memory_efficient_attention)
        _probe(fn, self.name, shape, device, dtype)
        return OneStage(fn, "fused kernel")
