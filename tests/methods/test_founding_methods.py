"""Skyformer, kernelized attention and SBM-Transformer against exact limits and dense references."""

import math
import statistics

import pytest
import torch

from attnbench.execute.runner import run_case
from attnbench.methods.kernelized import kernelized_attention
from attnbench.methods.registry import Shape
from attnbench.methods.sbm import edge_attention, fastrg_edges
from attnbench.plan.case import MeasureOptions, make_cases
from tests.conftest import build, qkv

F64 = torch.float64




def rel_error(a, b):
    return float((a - b).norm() / b.norm())


def test_kernelized_equals_the_formula_evaluated_directly():
    q, k, v = qkv()
    p = q.shape[-1]
    dist2 = ((q.unsqueeze(-2) - k.unsqueeze(-3)) ** 2).sum(-1)  # (b, h, n, n)
    torch.testing.assert_close(kernelized_attention(q, k, v), torch.exp(-dist2 / (2 * p**0.5)) @ v)


@pytest.mark.parametrize("inverse, iters", [("pinv", 6), ("newton", 40)])
def test_skyformer_with_every_row_as_landmark_is_kernelized(inverse, iters):
    q, k, v = qkv(scale=0.5)
    fn = build("skyformer", Shape(1, 2, 64, 16), gamma=0.0, inverse=inverse, iters=iters)
    fn.idx = torch.arange(2 * 64)  # all 2n rows of [Q; K]
    assert rel_error(fn(q, k, v), kernelized_attention(q, k, v)) <= 1e-4
    assert fn.diagnostics(q, k, v)["inverse_residual"] < 1e-6


def test_skyformer_official_settings_stay_near_one_percent_and_report_their_residual():
    q, k, v = qkv(scale=0.5)
    fn = build("skyformer", Shape(1, 2, 64, 16))  # gamma 0.1, 6 Newton-Schulz steps
    fn.idx = torch.arange(2 * 64)
    assert 1e-3 < rel_error(fn(q, k, v), kernelized_attention(q, k, v)) < 0.05
    assert 0 < fn.diagnostics(q, k, v)["inverse_residual"] <= 1


def test_skyformer_error_falls_as_features_double():
    n, shape = 512, Shape(1, 2, 512, 32)
    q, k, v = qkv(n=n, p=32, scale=0.5)
    exact = kernelized_attention(q, k, v)
    medians = [statistics.median(rel_error(build("skyformer", shape, seed=s, features=f)(q, k, v), exact)
                                 for s in range(5)) for f in (16, 32, 64, 128, 256)]
    assert all(a > b for a, b in zip(medians, medians[1:])), medians


def test_skyformer_official_sampling_takes_half_its_landmarks_from_each_side():
    fn = build("skyformer", Shape(1, 1, 100, 8), features=10, sampling="half")
    assert (fn.idx[:5] < 100).all() and (fn.idx[5:] >= 100).all()


def test_sbm_bernoulli_with_every_edge_probability_one_is_full_attention():
    q, k, v = qkv()
    fn = build("sbm", Shape(1, 2, 64, 16), variant="bernoulli", delta=1.0)
    with torch.no_grad():
        out = fn(q, k, v)
    full = torch.softmax(q @ k.transpose(-1, -2) / 4, dim=-1) @ v
    torch.testing.assert_close(out, full)


def test_edge_attention_equals_dense_softmax_under_the_same_mask():
    b, h, n = 2, 3, 40
    q, k, v = qkv(b=b, h=h, n=n)
    mask = torch.rand(b, h, n, n, generator=torch.Generator().manual_seed(3)) < 0.2
    mask[0, 0, 5] = False  # a query with no edge outputs 0
    graph, i, j = mask.reshape(b * h, n, n).nonzero(as_tuple=True)
    out = edge_attention(q, k, v, graph * n + i, graph * n + j)
    scores = (q @ k.transpose(-1, -2) / 4).masked_fill(~mask, -torch.inf)
    reference = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v
    torch.testing.assert_close(out, reference)


def small_sbm(seed=0, n=6, k=3):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(1, n, k, generator=g, dtype=F64), torch.rand(1, n, k, generator=g, dtype=F64)
    s = torch.softmax(torch.randn(k * k, generator=g, dtype=F64), 0).view(1, k, k)
    return x, s, y


def test_fastrg_mean_edge_count_matches_the_expected_adjacency():
    x, s, y = small_sbm(n=50, k=4)
    delta, draws = 0.01, 400
    expected = float((x @ s @ y.transpose(1, 2)).sum() + delta * 50 * 50)
    g = torch.Generator().manual_seed(0)
    counts = [fastrg_edges(x, s, y, delta=delta, density=0, generator=g)[0].numel() for _ in range(draws)]
    assert abs(statistics.mean(counts) - expected) < 3 * math.sqrt(expected / draws)  # Poisson total


def test_fastrg_pair_frequencies_fit_x_s_y_transposed():
    x, s, y = small_sbm()
    n, draws = x.shape[1], 20000
    rate = (x @ s @ y.transpose(1, 2))[0]
    g = torch.Generator().manual_seed(1)
    observed = torch.zeros(n, n, dtype=F64)
    # one call, `draws` independent graphs (as a layer samples one per head): rows are g * n + i
    copies = [t.expand(draws, *t.shape[1:]).contiguous() for t in (x, s, y)]
    rows, cols, _ = fastrg_edges(*copies, delta=0.0, density=0, generator=g)
    observed.index_put_((rows % n, cols), torch.ones(rows.numel(), dtype=F64), accumulate=True)
    expected = draws * rate
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    cells = n * n  # independent Poisson cells: chi-square with n^2 degrees of freedom
    assert (chi2 - cells) / math.sqrt(2 * cells) < 4, chi2


def test_sbm_density_target_and_spread_over_heads():
    q, k, v = qkv(b=2, h=4, n=256)
    fn = build("sbm", Shape(2, 4, 256, 16), density=0.05)
    d = fn.diagnostics(q, k, v)
    assert d["density_mean"] == pytest.approx(0.05, rel=0.05) and d["density_std"] > 0
    natural = build("sbm", Shape(2, 4, 256, 16)).diagnostics(q, k, v)["density_mean"]
    assert 0.15 < natural < 0.35  # about a quarter at initialisation (paper, appendix C)


def test_sbm_backward_reaches_cluster_embeddings_and_mlp():
    q, k, v = (t.requires_grad_() for t in qkv())
    for variant in ("fastrg", "bernoulli"):
        fn = build("sbm", Shape(1, 2, 64, 16), variant=variant, density=0.3)
        fn(q, k, v).square().sum().backward()
        assert fn.clusters.grad.abs().sum() > 0, variant
        assert fn.mlp[0].weight.grad.abs().sum() > 0, variant


def test_sbm_peak_memory_grows_linearly_with_edges():
    rows = [run_case(case, MeasureOptions(metrics=("memory",))) for d in (0.02, 0.04, 0.08)
            for case in make_cases(["sbm"], [1024], {"density": [str(d)]}, heads=2, head_dim=32, threads=1)]
    edges = [r["edges"] for r in rows]
    peaks = [r["peak_mem_bytes"] for r in rows]
    slopes = [(peaks[i + 1] - peaks[i]) / (edges[i + 1] - edges[i]) for i in range(2)]
    assert slopes[0] > 0 and slopes[1] == pytest.approx(slopes[0], rel=0.25), (edges, peaks)


def test_smartbird_with_k_equal_n_is_full_attention():
    q, k, v = qkv(n=48)
    fn = build("smartbird", Shape(1, 2, 48, 16), k=48, chunk=7)  # uneven chunks on purpose
    full = torch.softmax(q @ k.transpose(-1, -2) / 4, dim=-1) @ v
    torch.testing.assert_close(fn(q, k, v), full)


@pytest.mark.parametrize("rule", ["inverse_log_sq", "inverse_log", "raw", "random", "topk"])
def test_smartbird_rows_attend_exactly_k_distinct_keys_and_heads_differ(rule):
    q, k, v = qkv(h=4, n=200)
    fn = build("smartbird", Shape(1, 4, 200, 16), k=20, rule=rule, chunk=64)
    index = fn.indices(q, k)
    assert index.shape == (1, 4, 200, 20)
    assert (index.sort(-1).values.diff(dim=-1) > 0).all()  # k distinct keys in every row
    differ = not torch.equal(index[0, 0].sort(-1).values, index[0, 1].sort(-1).values)
    assert differ == (rule != "topk")  # sampling is per head; plain top-k of one sketch is not


def test_smartbird_inverse_log_squared_favours_high_sketch_weights():
    # 1 row, keys with sketch weights near 1 should be chosen far more often than tiny ones.
    from attnbench.methods.smartbird import sampling_scores

    sketch = torch.tensor([[[0.5, 0.3, 0.15, 0.04, 0.01]]], dtype=F64)
    g = torch.Generator().manual_seed(0)
    picks = torch.stack([sampling_scores(sketch, 1, "inverse_log_sq", g).argmax(-1) for _ in range(2000)])
    frequency = torch.bincount(picks.flatten(), minlength=5).double() / 2000
    assert (frequency.diff() < 0).all() and frequency[0] > 0.4, frequency


def test_smartbird_sketch_memory_is_chunked():
    from attnbench.methods.smartbird import chunk_rows

    assert chunk_rows(Shape(1, 4, 65536, 64), 0) * 4 * 65536 <= 2**24
    cases = make_cases(["smartbird", "full-explicit"], [2048], {"chunk": ["128", "2048"]}, heads=2, head_dim=32,
                       threads=1)
    chunked, whole, explicit = (run_case(c, MeasureOptions(metrics=("memory",)))["peak_mem_bytes"] for c in cases)
    assert chunked < whole / 4 and chunked < explicit / 4
