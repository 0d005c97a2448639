"""Popular public implementations as methods, so one run puts ours and theirs side by side.

Known only when the package is installed (`pip install "attnbench[peers]"`): `peer-nystrom-attention`
(lucidrains/nystrom-attention), `peer-performer-pytorch` (lucidrains/performer-pytorch),
`peer-linformer` (lucidrains/linformer). Each runs the package's own attention on our projected
q, k, v: performer-pytorch's FastAttention takes them directly; for the other two the module's
input and output projections are replaced by identities (their attention code is untouched).
Weights and random draws are the package's own, from torch's global generator seeded with the
run's seed. FLOP formulas are those of our equivalent methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnbench.methods.contract import Method, Shape, param, stage
from attnbench.methods.linformer import Linformer
from attnbench.methods.nystromformer import Nystromformer
from attnbench.methods.performer import Performer


def _merge(t: torch.Tensor) -> torch.Tensor:
    b, h, n, p = t.shape
    return t.transpose(1, 2).reshape(b, n, h * p)


def _split(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, width = t.shape
    return t.view(b, n, heads, width // heads).transpose(1, 2)


class _Columns(nn.Module):
    """x[..., start:stop]: hands one of q, k, v (concatenated) to a module that projects x."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[..., self.start:self.stop]


PEER_STAGE = "peer module"  # a peer's code is one stage: its insides are not ours to name


class _OnProjected(nn.Module):
    """Calls a peer module that takes x (b, n, 3 * width) on our q, k, v; returns (b, h, n, p)."""

    def __init__(self, peer: nn.Module, heads: int) -> None:
        super().__init__()
        self.peer, self.heads = peer, heads

    def forward(self, q, k, v):
        with stage(PEER_STAGE):
            return _split(self.peer(torch.cat([_merge(q), _merge(k), _merge(v)], dim=-1)), self.heads)


class _OnHeads(nn.Module):
    """Calls a peer module that takes q, k, v as they are."""

    def __init__(self, peer: nn.Module) -> None:
        super().__init__()
        self.peer = peer

    def forward(self, q, k, v):
        with stage(PEER_STAGE):
            return self.peer(q, k, v)


def _seeded(generator: torch.Generator) -> None:
    torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))


@dataclass(frozen=True)
class PeerNystrom(Method):
    """lucidrains/nystrom-attention's NystromAttention on our q, k, v."""

    paper = "github.com/lucidrains/nystrom-attention (Xiong et al. 2021)"
    stages = (PEER_STAGE,)
    landmarks: int = param(64, "num_landmarks", low=1)
    iters: int = param(6, "pinv_iterations", low=0)
    conv: int = param(0, "residual_conv_kernel; 0 = residual off", low=0)

    def _ours(self) -> Nystromformer:
        return Nystromformer(landmarks=self.landmarks, iters=self.iters, conv=self.conv, init="original")

    def build(self, shape, *, device, dtype, generator):
        from nystrom_attention import NystromAttention

        _seeded(generator)
        width = shape.heads * shape.head_dim
        peer = NystromAttention(dim=width, dim_head=shape.head_dim, heads=shape.heads,
                                num_landmarks=self.landmarks, pinv_iterations=self.iters,
                                residual=self.conv > 0, residual_conv_kernel=self.conv or 33)
        peer.to_qkv, peer.to_out = nn.Identity(), nn.Identity()
        return _OnProjected(peer, shape.heads).to(device, dtype)

    def flops(self, shape, scores=None):
        return self._ours().flops(shape)

    def scores_computed(self, shape):
        return self._ours().scores_computed(shape)


@dataclass(frozen=True)
class PeerPerformer(Method):
    """lucidrains/performer-pytorch's FastAttention (FAVOR+) on our q, k, v."""

    paper = "github.com/lucidrains/performer-pytorch (Choromanski et al. 2021)"
    stages = (PEER_STAGE,)
    features: int = param(256, "nb_features", low=1)

    def build(self, shape, *, device, dtype, generator):
        from performer_pytorch import FastAttention

        _seeded(generator)
        return _OnHeads(FastAttention(dim_heads=shape.head_dim, nb_features=self.features)).to(device, dtype)

    def flops(self, shape, scores=None):
        return Performer(features=self.features).flops(shape)

    def backward_flops(self, shape, scores=None):
        return Performer(features=self.features).backward_flops(shape)

    def scores_computed(self, shape):
        return Performer(features=self.features).scores_computed(shape)


@dataclass(frozen=True)
class PeerLinformer(Method):
    """lucidrains/linformer's LinformerSelfAttention on our q, k, v (one E for all heads, learned)."""

    paper = "github.com/lucidrains/linformer (Wang et al. 2020)"
    stages = (PEER_STAGE,)
    proj_dim: int = param(256, "k", low=1)
    share: bool = param(False, "share_kv: one projection, and the keys also serve as values")

    def build(self, shape, *, device, dtype, generator):
        from linformer import LinformerSelfAttention

        _seeded(generator)
        width = shape.heads * shape.head_dim
        peer = LinformerSelfAttention(dim=width, seq_len=shape.seq_len, k=self.proj_dim, heads=shape.heads,
                                      dim_head=shape.head_dim, share_kv=self.share)
        peer.to_q, peer.to_k, peer.to_out = _Columns(0, width), _Columns(width, 2 * width), nn.Identity()
        if not self.share:
            peer.to_v = _Columns(2 * width, 3 * width)
        return _OnProjected(peer, shape.heads).to(device, dtype)

    def flops(self, shape: Shape, scores=None):
        return Linformer(proj_dim=self.proj_dim).flops(shape)

    def backward_flops(self, shape: Shape, scores=None):
        return 2 * self.flops(shape)  # its projections are learned: they get gradients too

    def scores_computed(self, shape):
        return Linformer(proj_dim=self.proj_dim).scores_computed(shape)
