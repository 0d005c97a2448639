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

from attnbench.methods.contract import OneStage, Shape, Unsupported
from attnbench.methods.full import EXACT, Full, FullExplicit, sdpa_arguments


def flash_lower_right(q, k, v):
    """Causal attention of a query block shorter than the keys, aligned to the bottom right,
    through FlashAttention's own kernel: its causal flag is bottom-right aligned, which is how
    torch's `causal_lower_right` bias reaches it (SDPA with a mask tensor never runs flash). A
    head_dim that is not a multiple of 8 is padded, as SDPA pads it."""
    d = q.shape[-1]
    pad = -d % 8
    if pad:
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, is_causal=True, scale=d ** -0.5)[0]
    return out[..., :d] if pad else out


def flash_refusal(q, k, v, grouped: bool) -> str:
    """Why torch's flash kernel cannot run these inputs (its own warnings), or "" if it can."""
    from torch.backends.cuda import SDPAParams, can_use_flash_attention

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if can_use_flash_attention(SDPAParams(q, k, v, None, 0.0, False, grouped), True):
            return ""
    return torch_reasons(caught) or "torch's checks refuse it"


def torch_reasons(caught) -> str:
    """The first line of each distinct warning torch gave for refusing a kernel, joined."""
    reasons = [str(w.message).split("(Triggered internally")[0].strip().splitlines()[0] for w in caught]
    return "; ".join(dict.fromkeys(reasons))


def pinned(backend_name: str, shape=None, device="cpu"):
    """SDPA restricted to one backend, with the shape's causal and grouped-kv keywords: fn(q, k, v) -> out.
    A causal query block shorter than the keys gets its mask as a tensor (torch's lower-right bias
    would choose the kernel itself), except for flash on CUDA, which runs its own bottom-right
    causal kernel (flash_lower_right)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if (backend_name == "FLASH_ATTENTION" and shape is not None and shape.causal and shape.short_query
            and torch.device(device).type == "cuda"):
        grouped, checked = shape.grouped, []

        def lower_right(q, k, v):
            if not checked:  # asked once, at the first (untimed) call: the kernel raises rather than falls back
                refused = flash_refusal(q, k, v, grouped)
                if refused:
                    raise RuntimeError(refused)
                checked.append(True)
            return flash_lower_right(q, k, v)
        return lower_right
    backend = getattr(SDPBackend, backend_name)
    kwargs = sdpa_arguments(shape, mask_device=device) if shape is not None else {}

    def attention(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, **kwargs)
    return attention


def probe_shape(shape) -> Shape:
    """A small shape of the same kind (grouping, causality, a shorter query block) for a probe."""
    n = min(shape.seq_len, 256)
    queries = min(shape.q_len, n - 1) if shape.short_query else None
    return Shape(1, shape.group, n, shape.head_dim, 1 if shape.grouped else None, queries or None, shape.causal)


def probe(fn, shape, device, dtype) -> None:
    """Call `fn` on a small input of the case's device, dtype and head_dim (of `shape`'s kind:
    `fn` must be built for `probe_shape(shape)`); when gradients are on (the runner builds a
    backward or train case with them on), its backward too: a kernel with a forward but no
    backward for the case is then refused at build, not an error mid-measure."""
    small = probe_shape(shape)
    backward = torch.is_grad_enabled()
    q, k, v = (torch.randn(1, heads, length, shape.head_dim, device=device, dtype=dtype, requires_grad=backward)
               for heads, length in ((small.heads, small.q_len), (small.keys_heads, small.seq_len),
                                     (small.keys_heads, small.seq_len)))
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
            what = "backward " if torch.is_grad_enabled() else ""
            raise Unsupported(f"{name}: torch has no {backend} {what}kernel for this case ("
                              + (torch_reasons(caught) or str(exc).splitlines()[0]) + ")") from None


class _Pinned:
    backend: ClassVar[str]
    # One backend of SDPA, as torch dispatches plain and causal attention to it: the mask options
    # are `full`'s, `full-explicit`'s and flex's to measure.
    capabilities = EXACT
    refusals = {what: f"a pinned SDPA backend measures torch's kernels on plain and causal attention: use full, "
                      f"full-explicit or flex for {flag}" for what, flag in
                (("window", "--window"), ("documents", "--documents"), ("softcap", "--softcap"))}

    def build(self, shape, *, device, dtype, generator):
        check_runs(pinned(self.backend, probe_shape(shape), device), self.name, self.backend, shape, device, dtype)
        return OneStage(pinned(self.backend, shape, device), "fused kernel")


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
    stages = ("fused kernel",)  # one torch op, whatever it runs inside

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        # with enable_gqa the math backend repeats k and v to every query head (two copies)
        copies = 2 * shape.rows * shape.seq_len * shape.head_dim * itemsize if shape.grouped else 0
        return super().memory_bytes(shape, itemsize, mode, scores) + copies
