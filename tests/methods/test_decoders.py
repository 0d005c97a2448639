"""Masks and decoding as models ship them: sliding windows with sinks, packed documents and
soft-capping on every exact method against a dense masked softmax written out pair by pair here;
recurrent decode against the method's own causal output; document-masked linear attention against
each document run alone; the rows and refusals that follow."""

import dataclasses

import pytest
import torch

from attnbench.execute.runner import run_case
from attnbench.methods import masks
from attnbench.methods.contract import Shape
from attnbench.methods.registry import create_method
from attnbench.plan.case import MeasureOptions, make_cases
from tests.conftest import requires_cuda
from tests.methods.test_causal import inputs, make, repeat

F64 = torch.float64


def seen_by_rule(shape: Shape) -> torch.Tensor:
    """(q_len, seq_len) bool from the definitions in plain Python, one pair at a time."""
    lengths = shape.documents or (shape.seq_len,)
    doc_of, start_of = [], []
    for index, length in enumerate(lengths):
        start = sum(lengths[:index])
        doc_of += [index] * length
        start_of += [start] * length
    offset = shape.seq_len - shape.q_len
    rows = []
    for i in range(shape.q_len):
        p = offset + i
        row = []
        for j in range(shape.seq_len):
            ok = doc_of[p] == doc_of[j] and (not shape.causal or j <= p)
            if shape.window is not None:
                ok = ok and (abs(p - j) < shape.window or j - start_of[j] < shape.sinks)
            row.append(ok)
        rows.append(row)
    return torch.tensor(rows)


def reference(q, k, v, shape):
    scores = q.double() @ repeat(k, shape).double().transpose(-1, -2) / shape.head_dim**0.5
    if shape.softcap is not None:
        scores = torch.tanh(scores / shape.softcap) * shape.softcap
    scores = scores.masked_fill(~seen_by_rule(shape), -torch.inf)
    return torch.softmax(scores, dim=-1) @ repeat(v, shape).double()


BASE = Shape(1, 4, 150, 16, kv_heads=2)
MASKS = {
    "window": dict(window=24),
    "causal-window-sinks": dict(causal=True, window=24, sinks=4),
    "documents": dict(documents=(40, 7, 90, 13)),
    "causal-documents-window-sinks": dict(causal=True, documents=(40, 7, 90, 13), window=16, sinks=3),
    "softcap": dict(softcap=0.5),
    "causal-softcap-window": dict(causal=True, softcap=0.5, window=30),
    "decode-window-sinks": dict(causal=True, q_seq_len=1, window=32, sinks=4),
    "decode-block-window": dict(causal=True, q_seq_len=12, window=20, sinks=2),
}
SHAPES = {name: dataclasses.replace(BASE, **fields) for name, fields in MASKS.items()}


def test_the_mask_rule_and_the_closed_form_pair_count_agree_with_the_definitions():
    for shape in SHAPES.values():
        rule = seen_by_rule(shape)
        dense = masks.dense(shape)
        assert torch.equal(rule, torch.ones_like(rule) if dense is None else dense)
        if shape.masked:
            assert shape.pairs == int(rule.sum())
        keys = masks.visible_keys(shape)
        if keys is not None:  # a decode block gathers every key it may see, and nothing else
            hidden = torch.ones(shape.seq_len, dtype=torch.bool)
            hidden[keys] = False
            assert not rule[:, hidden].any() and len(keys) == masks.visible_count(shape) < shape.seq_len


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", ["full", "full-explicit"])
def test_exact_methods_equal_the_dense_masked_softmax(name, shape):
    method = create_method(name)
    if shape.softcap is not None and name == "full":
        assert "cannot change the scores" in method.unsupported(shape, "forward")
        return
    q, k, v = inputs(shape)
    _, fn = make(name, shape)
    assert (fn(q, k, v) - reference(q, k, v, shape)).abs().max() <= 1e-10


# Longer than BASE, so that the block mask has 128 x 128 tiles to skip.
FLEX = {"documents-window-sinks": dataclasses.replace(SHAPES["causal-documents-window-sinks"], seq_len=256,
                                                      documents=(100, 20, 136)),
        "softcap-window": dataclasses.replace(SHAPES["causal-softcap-window"], seq_len=256),
        "decode": dataclasses.replace(SHAPES["decode-window-sinks"], seq_len=512)}


@pytest.mark.parametrize("shape", FLEX.values(), ids=FLEX.keys())
def test_flex_equals_the_dense_masked_softmax_and_skips_tiles(shape, eager_compile):
    q, k, v = inputs(shape)
    method, fn = make("flex", shape)
    assert (fn(q, k, v) - reference(q, k, v, shape)).abs().max() <= 1e-10
    tiles = method.diagnostics(fn, q, k, v)["scores_computed"]
    assert shape.rows * shape.pairs <= tiles < shape.rows * shape.q_len * shape.seq_len


@pytest.mark.parametrize("name", ["sdpa-math", "longformer", "skyformer", "linear"])
def test_methods_without_a_window_or_soft_capping_are_refused_with_the_reason(name):
    method = create_method(name)
    for fields in (dict(window=8), dict(softcap=2.0)):
        assert method.unsupported(dataclasses.replace(BASE, **fields), "forward")
    assert "pinned SDPA backend" in create_method("sdpa-math").unsupported(SHAPES["window"], "forward")
    # a window as long as the sequence hides nothing (a model's 4096 keys on a shorter input): any method runs it
    assert method.unsupported(dataclasses.replace(BASE, seq_len=1024, window=1024), "forward") is None


RECURRENT = [("linear", {}), ("linear", {"normalize": "reference"}), ("performer", {"features": 32}),
             ("performer", {"features": 32, "kernel": "relu"})]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name, params", RECURRENT, ids=["linear", "linear-reference", "performer", "performer-relu"])
def test_a_recurrent_decode_step_equals_the_methods_own_output_over_every_key(name, params, causal):
    shape = Shape(2, 4, 200, 16, kv_heads=2, q_seq_len=5, causal=causal, cache="state")
    q, k, v = inputs(dataclasses.replace(shape, q_seq_len=None))
    k[..., -2, :] *= 3  # a new key above every cached one: FAVOR+'s stabiliser rises within the step
    method, whole = make(name, dataclasses.replace(shape, q_seq_len=None, cache="kv"), **params)
    _, fn = make(name, shape, **params)
    step = method.recurrent(fn, k, v)
    expected = whole(q, k, v)[..., -shape.q_len:, :]
    assert (step(q[..., -shape.q_len:, :], k, v) - expected).abs().max() <= 1e-10 * expected.abs().max()
    with pytest.raises(ValueError, match="built from"):
        step(q[..., -shape.q_len:, :], k, torch.zeros_like(v))


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name, params", [("linear", {}), ("performer", {"features": 16, "kernel": "relu"})])
def test_document_masked_linear_attention_equals_each_document_alone(name, params, causal):
    lengths = masks.draw_lengths(300, 6, seed=1)
    shape = Shape(1, 4, 300, 8, kv_heads=2, causal=causal, documents=lengths)
    q, k, v = inputs(shape)
    _, packed = make(name, shape, **params)
    out, start = packed(q, k, v), 0
    for length in lengths:
        piece = slice(start, start + length)
        _, alone = make(name, dataclasses.replace(shape, seq_len=length, documents=None), **params)
        expected = alone(q[..., piece, :], k[..., piece, :], v[..., piece, :])
        assert (out[..., piece, :] - expected).abs().max() <= 1e-12
        start += length


def test_a_state_decode_row_reads_a_constant_state_and_counts_the_step_alone():
    options = MeasureOptions(metrics=("flops", "memory", "error"))
    rows = {}
    for cache in ("kv", "state"):
        for n in (512, 2048):
            case = make_cases(["linear"], [n], causal=True, q_seq_len=1, cache=cache, heads=2, head_dim=16)[0]
            rows[cache, n] = run_case(case, options)
    for (cache, _), row in rows.items():
        assert row["status"] == "ok", row["status_detail"]
        assert row["cache"] == cache and row["flops"] == row["flops_analytic"]
    assert rows["state", 512]["cache_bytes"] == rows["state", 2048]["cache_bytes"] == 2 * (16 * 16 + 16) * 4
    assert rows["kv", 2048]["cache_bytes"] == 2 * 2 * 2047 * 16 * 4
    assert rows["state", 512]["flops"] == rows["state", 2048]["flops"] < rows["kv", 512]["flops"] / 50
    assert rows["state", 2048]["error_spectral"] == pytest.approx(rows["kv", 2048]["error_spectral"], rel=1e-6)
    assert rows["state", 2048]["error_attention_spectral"] is None  # a state keeps no V to read a matrix from


def test_window_decode_rows_read_only_the_window_and_the_sinks():
    options = MeasureOptions(metrics=("flops", "sparsity"))
    for n in (1024, 4096):
        row = run_case(make_cases(["full-explicit"], [n], causal=True, q_seq_len=1, window=128, sinks=4,
                                  heads=2, head_dim=16)[0], options)
        assert row["status"] == "ok", row["status_detail"]
        assert row["flops"] == row["flops_analytic"] == 4 * 2 * 132 * 16
        assert row["sparsity"] == 1.0


def test_unsupported_cases_say_why_and_packed_rows_record_their_lengths():
    cases = make_cases(["full", "skyformer"], [256], documents=4, seed=2)
    assert cases[0].doc_lengths == "+".join(map(str, masks.draw_lengths(256, 4, 2))) and cases[0].documents == 4
    row = run_case(cases[1], MeasureOptions(metrics=("flops",)))
    assert row["status"] == "unsupported" and "packed documents" in row["status_detail"]
    state = run_case(make_cases(["full"], [256], q_seq_len=1, cache="state")[0], MeasureOptions(metrics=("flops",)))
    assert state["status"] == "unsupported" and "recurrent state" in state["status_detail"]


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["full", "full-explicit", "flex", "linear"])
def test_the_mask_options_and_the_state_on_cuda_equal_the_cpu_references(name):
    """On a GPU, in float32 (TF32 off): the dense masks, FlexAttention's compiled block mask and
    the document and recurrent forms of linear attention against the float64 references."""
    torch.backends.cuda.matmul.allow_tf32 = False
    cuda = torch.device("cuda")
    shapes = [Shape(1, 4, 1024, 64, kv_heads=2, causal=True, window=200, sinks=4, documents=(300, 20, 704)),
              Shape(1, 4, 4096, 64, kv_heads=2, q_seq_len=1, causal=True, window=512, sinks=4)]
    for shape in shapes:
        method = create_method(name)
        if name == "linear" and shape.window is not None:
            shape = dataclasses.replace(shape, window=None, sinks=0)
        q, k, v = inputs(shape)
        fn = method.make(shape, device=cuda, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
        cpu = method.make(shape, device=torch.device("cpu"), dtype=F64, generator=torch.Generator().manual_seed(0))
        out = fn(*(t.float().to(cuda) for t in (q, k, v))).double().cpu()
        expected = cpu(q, k, v) if name == "linear" else reference(q, k, v, shape)
        assert (out - expected).abs().max() <= 1e-4 * expected.abs().max(), (name, shape)
    if name == "linear":
        shape = Shape(1, 4, 8192, 64, kv_heads=2, q_seq_len=1, causal=True, cache="state")
        q, k, v = (t.float().to(cuda) for t in inputs(shape))
        method = create_method("linear")
        step = method.recurrent(method.make(shape, device=cuda, dtype=torch.float32, generator=None), k, v)
        whole = method.make(dataclasses.replace(shape, cache="kv"), device=cuda, dtype=torch.float32, generator=None)
        assert (step(q, k, v) - whole(q, k, v)).abs().max() <= 1e-4 * whole(q, k, v).abs().max()


def test_an_error_reference_that_cannot_soft_cap_is_refused_before_anything_runs():
    from attnbench.errors import AttnbenchError
    from attnbench.execute.launchers import check_cases

    cases = make_cases(["full-explicit"], [256], causal=True, softcap=30.0)
    with pytest.raises(AttnbenchError, match="--reference full cannot be the exact target"):
        check_cases(cases, MeasureOptions(metrics=("error",)))
    check_cases(cases, MeasureOptions(metrics=("error",), reference="full-explicit"))


def test_the_mask_options_reach_a_layers_attention():
    options = MeasureOptions(metrics=("flops",))
    capped = make_cases(["full-explicit", "linear"], [256], scope="layer", causal=True, window=64, softcap=20.0)
    explicit, linear = (run_case(case, options) for case in capped)
    assert explicit["status"] == "ok" and explicit["flops"] == explicit["flops_analytic"]
    assert linear["status"] == "unsupported" and "sliding window" in linear["status_detail"]
    packed = run_case(make_cases(["linear"], [256], scope="layer", causal=True, documents=3, mode="backward")[0],
                      options)
    assert packed["status"] == "ok" and packed["flops"] == packed["flops_analytic"]
