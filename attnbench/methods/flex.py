"""Exact softmax attention through FlexAttention (torch.nn.attention.flex_attention), compiled.

With no block mask FlexAttention computes every query-key pair, tile by tile with an online
softmax, never holding n x n: the exact counterpart of the sparse methods' `backend=flex`, and
the kernel attention-gym and tritonbench measure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from attnbench.methods import masks
from attnbench.methods._flex import FlexAttention, block_mask, compile_mode, flex_flops, softcap_mod, tile_scores
from attnbench.methods.contract import Shape, param
from attnbench.methods.full import CAPPED, Full


@dataclass(frozen=True)
class Flex(Full):
    """Exact attention through compiled FlexAttention; causal, a window with sinks and documents
    through one block mask (the tiles it hides skipped, partly masked ones computed whole),
    soft-capping as a score_mod, grouped k, v natively."""

    paper = "Dong et al. 2024, Flex Attention: A Programming Model for Generating Optimized Attention Kernels, " \
            "arXiv:2412.05496"
    capabilities = CAPPED
    refusals = {}
    stages = ("flex kernel",)
    autotune: bool = param(False, "CUDA: compile in max-autotune-no-cudagraphs mode (autotuned Triton "
                                  "configurations, tens of seconds to minutes per shape) instead of the default")

    def build(self, shape, *, device, dtype, generator):
        mod = masks.mask_mod(shape, device)
        mask = None if mod is None else block_mask(mod, shape, device, per_head=False)
        return FlexAttention(self.name, mask, grouped=shape.grouped, autotune=self.autotune, device=device,
                             score_mod=softcap_mod(shape.softcap))

    def diagnostics(self, fn, q, k, v) -> dict:
        if fn.block_mask is None:
            return {}
        return {"scores_computed": tile_scores(fn.block_mask, Shape(*q.shape))}

    def _tiled(self, shape: Shape) -> bool:
        return shape.causal or shape.masked  # a block mask: its tiles are counted (diagnostics)

    def scores_computed(self, shape: Shape) -> float | None:
        return None if self._tiled(shape) else super().scores_computed(shape)

    def flops(self, shape: Shape, scores=None) -> float | None:
        return flex_flops(shape, scores) if self._tiled(shape) else super().flops(shape)

    def backward_flops(self, shape: Shape, scores=None) -> float | None:
        return flex_flops(shape, scores, "backward") if self._tiled(shape) else super().backward_flops(shape)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        return Full.memory_bytes(self, dataclasses.replace(shape, window=None, documents=None), itemsize, mode)

    def compiled(self) -> bool:
        return True

    def compile_mode(self, device) -> str:
        return compile_mode(device, self.autotune)

    def flops_countable(self) -> bool:
        return False
