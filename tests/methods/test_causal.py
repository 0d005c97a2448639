"""Causal masks, grouped kv heads and short query blocks: every method that claims them against
exact definitions, every other refused with its reason, and the metrics following the shape."""

import pytest
import torch

from attnbench.errors import AttnbenchError
from attnbench.execute.runner import run_case
from attnbench.measure.flops import _cpu_sdpa, _cuda_efficient, _cuda_flash, attention_pairs
from attnbench.methods.contract import Shape, Unsupported
from attnbench.methods.registry import create_method
from attnbench.plan.case import Case, MeasureOptions, make_cases
from tests.conftest import cli

TORCH = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])

F64 = torch.float64


def inputs(shape: Shape, dtype=F64, seed=3):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(shape.batch, shape.heads, shape.q_len, shape.head_dim, generator=g, dtype=F64)
    k, v = (torch.randn(shape.batch, shape.keys_heads, shape.seq_len, shape.head_dim, generator=g, dtype=F64)
            for _ in range(2))
    return q.to(dtype), k.to(dtype), v.to(dtype)


def visible(shape: Shape) -> torch.Tensor:
    """(q_len, seq_len) True where a query may see a key: the bottom-right aligned lower triangle."""
    offset = shape.seq_len - shape.q_len
    allowed = torch.ones(shape.q_len, shape.seq_len, dtype=torch.bool)
    return allowed.tril(offset) if shape.causal else allowed


def repeat(t, shape):
    return t.repeat_interleave(shape.group, dim=1)


def exact_attention(q, k, v, shape):
    """Causal GQA softmax attention written out: k, v repeated to every query head, the future masked."""
    scores = q.double() @ repeat(k, shape).double().transpose(-1, -2) / shape.head_dim**0.5
    scores = scores.masked_fill(~visible(shape), -torch.inf)
    return torch.softmax(scores, dim=-1) @ repeat(v, shape).double()


def make(name, shape, dtype=F64, **params):
    method = create_method(name, **params)
    assert method.unsupported(shape, "forward") is None
    return method, method.make(shape, device=torch.device("cpu"), dtype=dtype,
                               generator=torch.Generator().manual_seed(0))


SHAPES = [Shape(2, 8, 128, 16, kv_heads=2, causal=True),  # causal GQA prefill
          Shape(1, 4, 160, 16, kv_heads=1, q_seq_len=16, causal=True),  # a decoded block, multi-query
          Shape(1, 4, 96, 16, q_seq_len=1)]  # one token against a cache


@pytest.mark.parametrize("name", ["full", "full-explicit", "sdpa-math", "sdpa-flash"])
@pytest.mark.parametrize("shape", SHAPES, ids=["causal-gqa", "decode-block", "decode-one"])
def test_exact_methods_equal_causal_grouped_attention_in_float32(name, shape):
    q, k, v = inputs(shape, torch.float32)
    try:
        _, fn = make(name, shape, torch.float32)
    except Unsupported as exc:
        # torch's CPU flash kernel takes grouped k, v only in newer releases (2.11 does, 2.6 does
        # not): there the row is unsupported with torch's reason, never another kernel
        assert name == "sdpa-flash" and shape.grouped and TORCH < (2, 11), exc
        assert "same num_heads" in str(exc), exc
        return
    assert (fn(q, k, v).double() - exact_attention(q, k, v, shape)).abs().max() < 1e-5


# The causal masks through Dynamo's eager backend: inductor's CPU kernel costs seconds of
# compilation per mask in a fresh clone, and the suite compiles one kernel family, bigbird's
# (tests/methods/test_kernels.py); tests/execute/test_gpu.py compiles these on a GPU.
@pytest.mark.parametrize("shape", SHAPES[:2], ids=["causal-gqa", "decode-block"])
def test_flex_equals_causal_grouped_attention_and_counts_its_tiles(shape, eager_compile):
    q, k, v = inputs(shape, torch.float32)
    method, fn = make("flex", shape, torch.float32)
    assert (fn(q, k, v).double() - exact_attention(q, k, v, shape)).abs().max() < 1e-5
    tiles = method.diagnostics(fn, q, k, v)["scores_computed"]
    assert shape.rows * shape.pairs <= tiles <= shape.rows * shape.q_len * shape.seq_len


def feature_attention(phi_q, phi_k, v, shape, normalize=True):
    """The naive causal definition: the full feature matrix masked to the lower triangle."""
    weights = (phi_q @ phi_k.transpose(-1, -2)).masked_fill(~visible(shape), 0)
    out = weights @ v
    return out / weights.sum(-1, keepdim=True) if normalize else out


@pytest.mark.parametrize("shape", [Shape(1, 4, 128, 16, kv_heads=2, causal=True), Shape(1, 2, 200, 8, causal=True),
                                   Shape(1, 2, 150, 8, q_seq_len=20, causal=True), Shape(1, 2, 90, 8, q_seq_len=1)],
                         ids=["gqa-128", "200", "decode-block", "decode-one"])
def test_linear_and_performer_equal_their_naive_causal_definitions(shape):
    q, k, v = inputs(shape)
    wide_k, wide_v = repeat(k, shape), repeat(v, shape)
    elu = torch.nn.functional.elu
    _, linear = make("linear", shape)
    expected = feature_attention(elu(q) + 1, elu(wide_k) + 1, wide_v, shape)
    torch.testing.assert_close(linear(q, k, v), expected, rtol=1e-6, atol=1e-9)  # eps 1e-6 in the denominator
    _, reference = make("linear", shape, normalize="reference")
    scale = shape.seq_len**-0.25
    expected = feature_attention((elu(q) + 1) * scale, (elu(wide_k) + 1) * scale, wide_v, shape, normalize=False)
    torch.testing.assert_close(reference(q, k, v), expected / shape.seq_len**0.5)
    _, performer = make("performer", shape, features=32)
    own = performer.fn if hasattr(performer, "group") else performer
    expected = feature_attention(own.features(q, True), own.features(wide_k, False), wide_v, shape)
    torch.testing.assert_close(performer(q, k, v), expected)


def attention_matrix(fn, q, k, shape):
    """The effective attention matrix per head: the output for V = I."""
    eye = torch.eye(shape.seq_len, dtype=F64).expand(shape.batch, shape.keys_heads, -1, -1)
    return fn(q, k, eye)


@pytest.mark.parametrize("name, params", [("longformer", {"window": 32, "global_tokens": 3}),
                                          ("longformer", {"window": 16, "global_tokens": 0}),
                                          ("sparse_transformer", {"stride": 16}),
                                          ("sparse_transformer", {"stride": 16, "pattern": "fixed", "summary": 4})])
def test_causal_sparse_patterns_equal_masked_softmax_and_never_look_ahead(name, params):
    shape = Shape(1, 2, 96, 16, causal=True)
    q, k, v = inputs(shape)
    method, fn = make(name, shape, **params)
    mask = method.mask(fn, q, k)
    assert not (mask & ~visible(shape)).any() and mask.diagonal(dim1=-2, dim2=-1).all()
    scores = (q @ k.transpose(-1, -2) / 4).masked_fill(~mask, -torch.inf)
    torch.testing.assert_close(fn(q, k, v), torch.softmax(scores, -1) @ v)
    bidirectional = method.mask(make(name, Shape(1, 2, 96, 16), **params)[1], q, k)
    if name == "longformer":  # the causal pattern is the bidirectional one's lower half
        assert torch.equal(mask, bidirectional & visible(shape))


@pytest.mark.parametrize("causal", [False, True])
def test_longformer_decodes_a_block_through_its_window_not_the_cache(causal):
    shape = Shape(1, 4, 160, 16, kv_heads=2, q_seq_len=16, causal=causal)
    q, k, v = inputs(shape)
    method, fn = make("longformer", shape, window=32, global_tokens=2)
    assert method.kv_grouping(shape) == "native"  # gathers the window from the shared k, v: no copy of the cache
    wide_k, wide_v = repeat(k, shape), repeat(v, shape)
    mask = method.mask(fn, q, k)  # (b, h, 16, 160): the window around the last 16 positions, 2 globals
    assert mask[..., 2:128].sum() == 0 and not (mask & ~visible(shape)).any()
    scores = (q @ wide_k.transpose(-1, -2) / 4).masked_fill(~mask, -torch.inf)
    torch.testing.assert_close(fn(q, k, v), torch.softmax(scores, -1) @ wide_v)
    per_head = method.formula_shape(shape)
    assert method.scores_computed(per_head) == shape.rows * 16 * (2 + 32)  # gathered: 2 globals, 144 - 16 .. 159


def test_sparse_transformer_causal_strided_is_the_paper_s_pattern():
    shape = Shape(1, 1, 64, 8, causal=True)
    method, fn = make("sparse_transformer", shape, stride=8)
    i, j = torch.arange(64).view(-1, 1), torch.arange(64).view(1, -1)
    paper = (j <= i) & ((i - j <= 8) | ((i - j) % 8 == 0))  # A1: i - l <= j <= i; A2: (i - j) mod l = 0
    assert torch.equal(method.mask(fn, *inputs(shape)[:2])[0, 0], paper)


def test_reformer_causal_attends_no_later_key():
    shape = Shape(1, 2, 128, 16, causal=True)
    q, k, _ = inputs(shape)
    _, fn = make("reformer", shape, bucket_size=16)
    weights = attention_matrix(fn, q, k, shape)
    assert weights.triu(1).abs().max() == 0
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 128, dtype=F64))


@pytest.mark.parametrize("name", ["skyformer", "linformer", "nystromformer", "sbm", "smartbird", "bigbird", "informer",
                                  "kernelized"])
def test_methods_without_a_causal_form_are_unsupported_with_their_reason(name):
    (case,) = make_cases([name], [256], causal=True)
    row = run_case(case, MeasureOptions(metrics=("flops",)))
    assert row["status"] == "unsupported"
    assert name.split("_")[0] in row["status_detail"] and ("future" in row["status_detail"] or
                                                            "causal" in row["status_detail"])


def test_grouped_and_short_query_refusals_say_why():
    reformer = create_method("reformer")
    assert "no key heads to group" in reformer.unsupported(Shape(1, 4, 256, 16, kv_heads=2), "forward")
    assert "shared QK" in reformer.unsupported(Shape(1, 4, 256, 16, q_seq_len=1), "forward")
    assert "as many queries as keys" in create_method("skyformer").unsupported(Shape(1, 4, 256, 16, q_seq_len=1),
                                                                                "forward")
    assert create_method("linformer").unsupported(Shape(1, 4, 256, 16, q_seq_len=1), "forward") is None


def test_causal_flops_of_full_are_the_lower_triangle_by_formula_and_counter():
    n = 1024
    rows = {causal: run_case(make_cases(["full"], [n], heads=1, head_dim=16, causal=causal)[0],
                             MeasureOptions(metrics=("flops", "sparsity")))
            for causal in (False, True)}
    for column in ("flops", "flops_analytic"):
        ratio = rows[True][column] / rows[False][column]
        assert abs(ratio / (n * (n + 1) / 2 / n**2) - 1) < 1e-3
    assert rows[True]["sparsity"] == 1
    explicit = run_case(make_cases(["full-explicit"], [n], heads=1, head_dim=16, causal=True)[0],
                        MeasureOptions(metrics=("flops", "sparsity")))
    assert explicit["flops"] == rows[False]["flops"]  # every score computed, half masked
    assert explicit["sparsity"] == pytest.approx(2 * n / (n + 1))  # against what exact causal attention needs


def test_decode_flops_and_memory_follow_the_query_block():
    b, h, kv, n, q_len, d = 1, 32, 8, 8192, 1, 128
    (case,) = make_cases(["full"], [n], q_seq_len=q_len, kv_heads=kv, heads=h, head_dim=d)
    row = run_case(case, MeasureOptions(metrics=("flops", "memory")))
    assert row["status"] == "ok" and row["grouped_kv"] == "native"
    assert row["flops"] == row["flops_analytic"] == 4 * b * h * q_len * n * d
    assert row["peak_mem_analytic_bytes"] < n * n  # no n x n term: the output and its row statistics
    flex = create_method("flex")
    assert flex.flops(case.shape) == 4 * b * h * q_len * n * d


def test_flop_rules_of_fused_kernels_honour_causal_alignment():
    q, k = (1, 2, 4, 8), (1, 1, 10, 8)  # grouped: one key head for two query heads
    assert attention_pairs(4, 10, True, bottom_right=True) == 4 * 6 + 10
    assert attention_pairs(4, 10, True, bottom_right=False) == 10
    assert _cuda_flash(q, k, k, 0.0, True) == 2 * 2 * (4 * 6 + 10) * 16  # flash: bottom right
    assert _cuda_efficient(q, k, k, None, False, 0.0, True) == 2 * 2 * 10 * 16  # top left
    assert _cpu_sdpa(q, k, k, 0.0, False) == 2 * 2 * 40 * 16


def test_error_is_against_exact_causal_attention():
    (case,) = make_cases(["full-explicit", "linear"], [256], heads=4, kv_heads=2, head_dim=16, causal=True)[:1]
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["error_spectral"] < 1e-6 and row["error_attention_spectral"] < 1e-6  # a bidirectional target: ~1
    for name, grouping in (("linear", "native"), ("sparse_transformer", "repeated")):
        (approximate,) = make_cases([name], [256], heads=4, kv_heads=2, head_dim=16, causal=True)
        row = run_case(approximate, MeasureOptions(metrics=("error",)))
        assert row["grouped_kv"] == grouping and 0.05 < row["error_spectral"] < 2


def test_error_above_the_dense_limit_is_matrix_free_on_a_rectangular_matrix():
    (case,) = make_cases(["linear"], [2048], heads=2, kv_heads=1, head_dim=16, q_seq_len=64, causal=True)
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["status"] == "ok" and 0.01 < row["error_attention_spectral"] < 2


def test_layer_scope_builds_a_causal_grouped_decoder_layer():
    from attnbench.execute.model import build_network
    from attnbench.plan.scopes import ModelShape

    shape = Shape(1, 4, 64, 8, kv_heads=2, causal=True)
    layer = build_network(create_method("full"), shape, "layer", ModelShape(), device="cpu", dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    assert layer.k.out_features == layer.v.out_features == 16 and layer.q.out_features == 32
    x = torch.randn(1, 64, 32, dtype=F64)
    later = x.clone()
    later[:, 40:] += 1  # change only positions 40..63
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[:, :40], layer(later)[:, :40])
    cases = make_cases(["full", "linear"], [128], scope="layer", causal=True, heads=4, kv_heads=2, head_dim=8,
                       mode="train")
    rows = [run_case(c, MeasureOptions(metrics=("flops",))) for c in cases]
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_shape_options_are_one_identity_and_refuse_impossible_values():
    (plain,) = make_cases(["full"], [256], kv_heads=4, heads=4, q_seq_len=256)
    assert plain == Case("full", {}, seq_len=256, threads=plain.threads)  # today's case, one identity
    assert Case.of({"method": "full", "seq_len": 256, "threads": plain.threads}) == plain  # an older report's row
    with pytest.raises(AttnbenchError, match="does not divide"):
        make_cases(["full"], [256], heads=8, kv_heads=3)
    with pytest.raises(AttnbenchError, match="more queries than keys"):
        make_cases(["full"], [256, 1024], q_seq_len=512)
    with pytest.raises(AttnbenchError, match="--scope attention"):
        make_cases(["full"], [256], q_seq_len=1, scope="layer")


def test_cli_runs_decode_and_refuses_bad_shapes_in_one_line(tmp_path):
    out = tmp_path / "decode.csv"
    result = cli("run", "-m", "full,linformer,skyformer", "-n", "512", "--q-seq", "1", "--kv-heads", "2",
                 "--heads", "4", "--head-dim", "16", "--metrics", "flops,sparsity", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    from attnbench.results.report import load

    rows = {r["method"]: r for r in load(out).rows}
    assert rows["full"]["q_seq_len"] == 1 and rows["full"]["kv_heads"] == 2 and rows["full"]["causal"] is False
    assert rows["linformer"]["status"] == "ok" and rows["skyformer"]["status"] == "unsupported"
    for args in (["--kv-heads", "3", "--heads", "8"], ["--q-seq", "2k"]):
        bad = cli("run", "-m", "full", "-n", "1k", *args, "-o", str(tmp_path / "x.csv"))
        assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    listed = cli("list", "longformer")
    assert "causal: yes" in listed.stdout and "GQA (--kv-heads): k, v repeated" in listed.stdout


def test_scenario_grids_over_causal_and_query_lengths(tmp_path):
    from attnbench.plan.scenario import load_scenario

    path = tmp_path / "s.toml"
    path.write_text('methods = ["full"]\nseq = [256]\ncausal = [false, true]\nq_seq = [1, 16]\nkv_heads = 2\n'
                    'heads = 4\n')
    cases = load_scenario(path).cases()
    assert {(c.causal, c.q_seq_len, c.kv_heads) for c in cases} == {(a, q, 2) for a in (False, True) for q in (1, 16)}


def test_show_pattern_draws_causal_patterns(tmp_path):
    out = tmp_path / "p.png"
    drawn = cli("show-pattern", "-m", "longformer", "-n", "64", "-p", "window=16", "--causal", "-o", str(out))
    assert drawn.returncode == 0 and out.stat().st_size > 0
    refused = cli("show-pattern", "-m", "skyformer", "-n", "64", "--causal", "-o", str(tmp_path / "q.png"))
    assert refused.returncode != 0 and "future keys" in refused.stderr


def test_a_method_that_repeats_kv_keeps_its_own_weights_trained():
    from attnbench.execute.calls import make_call, trainable
    from attnbench.execute.model import build_network
    from attnbench.plan.scopes import ModelShape

    shape = Shape(1, 4, 64, 8, kv_heads=2)
    method = create_method("sbm", clusters=4)
    layer = build_network(method, shape, "layer", ModelShape(), device="cpu", dtype=torch.float32,
                          generator=torch.Generator().manual_seed(0))
    own = {id(p) for p in layer.attention.fn.fn.parameters()}
    assert own and own <= {id(p) for p in layer.parameters()}  # registered: trained and moved with the layer
    fn = method.make(shape, device="cpu", dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    q, k, v = inputs(shape, torch.float32)
    grads = make_call(fn, q, k, v, "backward")()
    assert len(grads) == 3 + len(trainable(fn)) and len(trainable(fn)) > 0
