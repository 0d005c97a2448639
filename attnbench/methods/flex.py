"""Exact softmax attention through FlexAttention (torch.nn.attention.flex_attention), compiled.

With no block mask FlexAttention computes every query-key pair, tile by tile with an online
softmax, never holding n x n: the exact counterpart of the sparse methods' `backend=flex`, and
the kernel attention-gym and tritonbench measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnbench.methods._flex import FlexAttention, block_mask, causal_mod, compile_mode, flex_flops, tile_scores
from attnbench.methods.contract import Shape, param
from attnbench.methods.full import EXACT, Full


@dataclass(frozen=True)
class Flex(Full):
    """Exact attention through compiled FlexAttention; causal through a causal block mask (the
    tiles above the diagonal skipped, partly masked ones computed whole), grouped k, v natively."""

    paper = "Dong et al. 2024, Flex Attention: A Programming Model for Generating Optimized Attention Kernels, " \
            "arXiv:2412.05496"
    capabilities = EXACT
    stages = ("flex kernel",)
    autotune: bool = param(False, "CUDA: compile in max-autotune-no-cudagraphs mode (autotuned Triton "
                                  "configurations, tens of seconds to minutes per shape) instead of the default")

    def build(self, shape, *, device, dtype, generator):
        mask = block_mask(causal_mod(shape), shape, device, per_head=False) if shape.causal else None
        return FlexAttention(self.name, mask, grouped=shape.grouped, autotune=self.autotune, device=device)

    def diagnostics(self, fn, q, k, v) -> dict:
        if fn.block_mask is None:
            return {}
        return {"scores_computed": tile_scores(fn.block_mask, Shape(*q.shape))}

    def scores_computed(self, shape: Shape) -> float | None:
        return None if shape.causal else super().scores_computed(shape)  # causal: the tiles (diagnostics)

    def flops(self, shape: Shape, scores=None) -> float | None:
        return flex_flops(shape, scores) if shape.causal else super().flops(shape)

    def backward_flops(self, shape: Shape, scores=None) -> float | None:
        return flex_flops(shape, scores, "backward") if shape.causal else super().backward_flops(shape)

    def compiled(self) -> bool:
        return True

    def compile_mode(self, device) -> str:
        return compile_mode(device, self.autotune)

    def flops_countable(self) -> bool:
        return False
