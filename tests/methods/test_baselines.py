"""Baselines against their exact limits and dense references (float64)."""

import statistics

import pytest
import torch

from attnbench.methods.nystromformer import segment_means
from attnbench.methods.registry import Shape, create_method
from tests.conftest import build, qkv

F64 = torch.float64




def softmax_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, -torch.inf)
    return torch.softmax(scores, dim=-1) @ v


def rel_error(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("inverse, iters", [("pinv", 6), ("newton", 60)])
def test_nystromformer_with_n_landmarks_is_softmax(inverse, iters):
    q, k, v = qkv(n=48, scale=0.5)
    fn = build("nystromformer", Shape(1, 2, 48, 16), landmarks=48, inverse=inverse, iters=iters)
    assert rel_error(fn(q, k, v), softmax_attention(q, k, v)) < 1e-8


def test_nystromformer_segments_need_not_divide_n_and_conv_adds_a_depthwise_filter():
    x = torch.arange(10, dtype=F64).view(1, 1, 10, 1)
    assert segment_means(x, 3).flatten().tolist() == [1.0, 4.0, 7.5]  # segments 0-2, 3-5, 6-9
    q, k, v = qkv(n=50)
    plain = build("nystromformer", Shape(1, 2, 50, 16), landmarks=8)(q, k, v)
    with_conv = build("nystromformer", Shape(1, 2, 50, 16), landmarks=8, conv=5)
    weight = with_conv.conv.weight  # (h, 1, 5, 1)
    expected = torch.stack([torch.nn.functional.conv1d(v[0, h].T.unsqueeze(1), weight[h, :, :, 0].unsqueeze(0),
                                                       padding=2).squeeze(1).T for h in range(2)]).unsqueeze(0)
    torch.testing.assert_close(with_conv(q, k, v) - plain, expected)


def test_linformer_with_identity_projections_is_softmax():
    q, k, v = qkv(n=40)
    fn = build("linformer", Shape(1, 2, 40, 16), proj_dim=40, projection="identity")
    torch.testing.assert_close(fn(q, k, v), softmax_attention(q, k, v))
    bad = create_method("linformer", proj_dim=32, projection="identity")
    assert "proj_dim equal to seq_len" in bad.unsupported(Shape(1, 2, 40, 16), "forward")


def test_linear_attention_equals_its_dense_form():
    q, k, v = qkv()
    phi_q, phi_k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    weights = phi_q @ phi_k.transpose(-1, -2)
    dense = (weights / weights.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(build("linear", Shape(1, 2, 64, 16))(q, k, v), dense)
    n = q.shape[-2]
    reference = (phi_q @ phi_k.transpose(-1, -2) / n**0.5) @ v / n**0.5  # mlpen: n^(-1/4) twice, no denominator
    torch.testing.assert_close(build("linear", Shape(1, 2, 64, 16), normalize="reference")(q, k, v), reference)


def test_performer_error_falls_as_features_grow():
    q, k, v = qkv(n=256, p=16, scale=0.5)
    exact = softmax_attention(q, k, v)
    errors = [statistics.median(rel_error(build("performer", Shape(1, 2, 256, 16), seed=s, features=m)(q, k, v), exact)
                                for s in range(5)) for m in (16, 64, 256, 1024)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.12


def masked_reference(q, k, v, mask):
    return softmax_attention(q, k, v, mask)


@pytest.mark.parametrize("n, params", [(96, {"window": 16, "global_tokens": 3}),
                                       (100, {"window": 32, "global_tokens": 0}),
                                       (64, {"window": 128, "global_tokens": 1})])  # 2n: every key
def test_longformer_equals_dense_softmax_under_its_pattern(n, params):
    q, k, v = qkv(n=n)
    shape = Shape(1, 2, n, 16)
    method = create_method("longformer", **params)
    fn = method.build(shape, device=torch.device("cpu"), dtype=F64, generator=None)
    torch.testing.assert_close(fn(q, k, v), masked_reference(q, k, v, method.mask(fn, q, k)))


@pytest.mark.parametrize("n, params", [(128, {"block_size": 16, "random_blocks": 2}),
                                       (64, {"block_size": 16, "random_blocks": 3}),
                                       (48, {"block_size": 16, "random_blocks": 5})])
def test_bigbird_equals_dense_softmax_under_its_pattern(n, params):
    q, k, v = qkv(h=3, n=n)
    method = create_method("bigbird", **params)
    fn = build("bigbird", Shape(1, 3, n, 16), **params)
    mask = method.mask(fn, q, k)[0]
    torch.testing.assert_close(fn(q, k, v), masked_reference(q, k, v, mask.unsqueeze(0)))
    blocks = n // params["block_size"]
    if blocks >= 8:  # enough blocks to draw from: each middle row sees 3 window + 2 global + r random
        size = params["block_size"]
        interior = mask[:, [size * i for i in range(2, blocks - 2)]]  # windows clear of the global blocks
        assert (interior.sum(-1) == (5 + params["random_blocks"]) * size).all()
        assert not torch.equal(mask[0], mask[1])  # random blocks are drawn per head


@pytest.mark.parametrize("pattern", ["fixed", "strided"])
def test_sparse_transformer_equals_dense_softmax_under_its_pattern(pattern):
    q, k, v = qkv(n=64)
    shape = Shape(1, 2, 64, 16)
    method = create_method("sparse_transformer", pattern=pattern, stride=8, summary=2)
    fn = method.build(shape, device=torch.device("cpu"), dtype=F64, generator=None)
    torch.testing.assert_close(fn(q, k, v), masked_reference(q, k, v, method.mask(fn, q, k)))


def test_reformer_with_one_bucket_is_softmax_within_its_chunks():
    n, size = 64, 16
    q, _, v = qkv(n=n)
    fn = build("reformer", Shape(1, 2, n, 16), hashes=1, bucket_size=size, buckets=1)
    keys = torch.nn.functional.normalize(q, dim=-1)  # shared QK
    chunk = torch.arange(n) // size
    near = (chunk.view(-1, 1) == chunk.view(1, -1)) | (chunk.view(-1, 1) == (chunk.view(1, -1) + 1) % (n // size))
    scores = (q @ keys.transpose(-1, -2) / 4).masked_fill(~near, -torch.inf)
    scores = scores.masked_fill(torch.eye(n, dtype=torch.bool), -1e5)  # self only as a last resort
    torch.testing.assert_close(fn(q, None, v), torch.softmax(scores, dim=-1) @ v)


def test_reformer_error_falls_as_hash_rounds_grow():
    q, _, v = qkv(n=128, scale=2.0)
    keys = torch.nn.functional.normalize(q, dim=-1)
    scores = (q @ keys.transpose(-1, -2) / 4).masked_fill(torch.eye(128, dtype=torch.bool), -1e5)
    exact = torch.softmax(scores, dim=-1) @ v
    errors = [statistics.median(rel_error(build("reformer", Shape(1, 2, 128, 16), seed=s, hashes=h, bucket_size=16)
                                          (q, None, v), exact) for s in range(5)) for h in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_informer_with_every_query_active_is_softmax():
    q, k, v = qkv(n=32)
    fn = build("informer", Shape(1, 2, 32, 16), factor=10)  # 10 * ceil(ln 32) >= 32: all queries
    torch.testing.assert_close(fn(q, k, v), softmax_attention(q, k, v))


def test_informer_lazy_queries_take_the_mean_of_values():
    q, k, v = qkv(n=256)
    out = build("informer", Shape(1, 2, 256, 16), factor=1)(q, k, v)  # 6 active queries per head
    lazy = (out - v.mean(dim=2, keepdim=True)).abs().amax(-1) < 1e-12
    assert (lazy.sum(-1) == 256 - 6).all()
