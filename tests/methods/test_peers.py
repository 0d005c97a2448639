"""Where the public implementations are installed: ours and theirs agree on the same inputs and draws."""

import pytest
import torch

from attnbench.methods.registry import Shape, create_method

F64 = torch.float64
SHAPE = Shape(2, 3, 128, 16)


def qkv(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*(SHAPE.batch, SHAPE.heads, SHAPE.seq_len, SHAPE.head_dim), generator=g, dtype=F64) * 0.5
            for _ in range(3)]


def build(name, **params):
    return create_method(name, **params).build(SHAPE, device=torch.device("cpu"), dtype=F64,
                                               generator=torch.Generator().manual_seed(0))


def test_nystrom_attention_matches_ours():
    pytest.importorskip("nystrom_attention")
    q, k, v = qkv()
    ours = build("nystromformer", landmarks=16, iters=6, init="original")  # its pinv start is ours 'original'
    theirs = build("peer-nystrom-attention", landmarks=16, iters=6)
    torch.testing.assert_close(theirs(q, k, v), ours(q, k, v))


def test_performer_pytorch_matches_ours_with_the_same_features():
    pytest.importorskip("performer_pytorch")
    q, k, v = qkv()
    ours, theirs = build("performer", features=64), build("peer-performer-pytorch", features=64)
    theirs.peer.projection_matrix.copy_(ours.omega)  # the peer module, inside its one stage
    torch.testing.assert_close(theirs(q, k, v), ours(q, k, v))


@pytest.mark.parametrize("share", [False, True])
def test_linformer_matches_ours_with_the_same_projections(share):
    pytest.importorskip("linformer")
    q, k, v = qkv()
    ours, theirs = build("linformer", proj_dim=32, share=share), build("peer-linformer", proj_dim=32, share=share)
    peer = theirs.peer
    ours.e = peer.proj_k.detach().T.expand(SHAPE.heads, -1, -1)  # one E for every head
    ours.f = ours.e if share else peer.proj_v.detach().T.expand(SHAPE.heads, -1, -1)
    # Its share_kv also takes the keys as values (ours shares only the projection, as the paper).
    torch.testing.assert_close(theirs(q, k, v), ours(q, k, k if share else v))
