"""torch's scaled_dot_product_attention pinned to one backend (torch.nn.attention.sdpa_kernel).

`full` lets SDPA pick a kernel; these name it: `sdpa-flash` (FlashAttention-2 on CUDA, torch's
own flash-style kernel on CPU), `sdpa-efficient` (memory-efficient, xFormers' kernel, CUDA),
`sdpa-cudnn` (cuDNN's fused attention, CUDA) and `sdpa-math` (the reference composition of
matmuls and softmax, which materializes the n x n scores). A backend that cannot run the case
(device, dtype, head_dim, GPU generation) makes the row 'unsupported' with torch's own reasons;
SDPA is never allowed to fall back to another backend.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from attnbench.contract import Unsupported
from attnbench.methods.full import Full, FullExplicit


def pinned(backend_name: str):
    """SDPA restricted to one backend: fn(q, k, v) -> out."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, backend_name)

    def attention(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)
    return attention


def probe(fn, shape, device, dtype) -> None:
    """Call `fn` on a small input of the case's device, dtype and head_dim; when gradients are on
    (the runner builds a backward or train case with them on), its backward too: a kernel with a
    forward but no backward for the case is then refused at build, not an error mid-measure."""
    n = min(shape.seq_len, 256)
    backward = torch.is_grad_enabled()
    q, k, v = (torch.randn(1, 1, n, shape.head_dim, device=device, dtype=dtype, requires_grad=backward)
               for _ in range(3))
    if not backward:
        with torch.no_grad():
            fn(q, k, v)
        return
    out = fn(q, k, v)
    out.backward(torch.ones_like(out))


def check_runs(fn, name: str, backend: str, shape, device, dtype) -> None:
    """`probe`; if torch has no kernel for the case, raise Unsupported with the reasons torch warns about."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            probe(fn, shape, device, dtype)
        except (RuntimeError, NotImplementedError) as exc:
            reasons = [str(w.message).split("(Triggered internally")[0].strip().splitlines()[0] for w in caught]
            what = "backward " if torch.is_grad_enabled() else ""
            raise Unsupported(f"{name}: torch has no {backend} {what}kernel for this case ("
                              + ("; ".join(dict.fromkeys(reasons)) or str(exc).splitlines()[0]) + ")") from None


class _Pinned:
    backend: ClassVar[str]

    def build(self, shape, *, device, dtype, generator):
        fn = pinned(self.backend)
        check_runs(fn, self.name, self.backend, shape, device, dtype)
        return fn


@dataclass(frozen=True)
class SdpaFlash(_Pinned, Full):
    """SDPA's flash backend only."""

    paper = "Dao 2023, FlashAttention-2, arXiv:2307.08691 (torch SDPA's flash backend)"
    backend = "FLASH_ATTENTION"


@dataclass(frozen=True)
class SdpaEfficient(_Pinned, Full):
    """SDPA's memory-efficient backend only."""

    paper = "Rabe & Staats 2021, Self-attention Does Not Need O(n^2) Memory, arXiv:2112.05682 (xFormers' kernel)"
    backend = "EFFICIENT_ATTENTION"


@dataclass(frozen=True)
class SdpaCudnn(_Pinned, Full):
    """SDPA's cuDNN backend only."""

    paper = "NVIDIA cuDNN fused flash attention (torch SDPA's cuDNN backend)"
    backend = "CUDNN_ATTENTION"


@dataclass(frozen=True)
class SdpaMath(_Pinned, FullExplicit):
    """SDPA's math backend only: matmuls and softmax, the n x n scores materialized."""

    backend = "MATH"
