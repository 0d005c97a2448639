"""Exact softmax attention through FlexAttention (torch.nn.attention.flex_attention), compiled.

With no block mask FlexAttention computes every query-key pair, tile by tile with an online
softmax, never holding n x n: the exact counterpart of the sparse methods' `backend=flex`, and
the kernel attention-gym and tritonbench measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnbench.contract import Capabilities
from attnbench.methods._flex import FlexAttention, compile_mode
from attnbench.methods.full import Full


@dataclass(frozen=True)
class Flex(Full):
    """Exact attention through compiled FlexAttention."""

    paper = "Dong et al. 2024, Flex Attention: A Programming Model for Generating Optimized Attention Kernels, " \
            "arXiv:2412.05496"
    capabilities = Capabilities(exact=True)

    def build(self, shape, *, device, dtype, generator):
        return FlexAttention(self.name)

    def compiled(self) -> bool:
        return True

    def compile_mode(self, device) -> str:
        return compile_mode(device)

    def flops_countable(self) -> bool:
        return False
