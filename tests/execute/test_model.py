"""Layer and model scope: every method inside an encoder layer and the LRA encoder, forward and
training step; the model's size and FLOPs against their formulas; Skyformer approximating softmax."""

import pytest
import torch

from attnbench.execute.model import build_network, dense_flops, parameter_count
from attnbench.execute.runner import run_case
from attnbench.methods.contract import Shape
from attnbench.methods.registry import create_method, list_methods
from attnbench.plan.case import MeasureOptions, make_cases
from attnbench.plan.scopes import ModelShape
from tests.conftest import SMALL, build, cli, qkv

# Kernels that do not run on a CPU: SDPA's CUDA-only backends, FlexAttention's backward.
CPU_UNSUPPORTED = {"forward": ("sdpa-efficient", "sdpa-cudnn"), "train": ("sdpa-efficient", "sdpa-cudnn", "flex")}


@pytest.mark.parametrize("scope", ["layer", "model"])
@pytest.mark.parametrize("name", list_methods())
def test_every_method_runs_in_a_layer_and_a_model_forward_and_training(name, scope, request):
    if name == "flex":  # the layer around it is the subject: Dynamo's eager backend, no inductor build
        request.getfixturevalue("eager_compile")
    params = {k: [v] for k, v in SMALL.get(name, {}).items()}
    for mode in ("forward", "train"):
        (case,) = make_cases([name], [64], params, scope=scope, mode=mode, heads=2, head_dim=8, threads=1)
        row = run_case(case, MeasureOptions(metrics=("flops",)))
        if name in CPU_UNSUPPORTED.get(mode, ()):
            assert row["status"] == "unsupported", row["status_detail"]
            continue
        assert row["status"] == "ok", row["status_detail"]
        if not create_method(name).flops_countable():
            assert row["flops"] is None and "not counted" in row["flops_by_op"]
            continue
        assert row["scope"] == scope and row["flops"] > row["flops_attention"] > 0


def test_the_lra_model_has_the_formula_s_parameter_count():
    shape, attention = ModelShape(), Shape(1, 2, 1024, 32)
    network = build_network(create_method("full"), attention, "model", shape, device=torch.device("cpu"),
                            dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    counted = sum(p.numel() for p in network.parameters())
    # (512 + 1024) * 64 embeddings + 2 layers * 33,472 + final LayerNorm 128 + classifier 650
    assert counted == parameter_count(2, 32, 1024, shape, "model") == 98_304 + 66_944 + 128 + 650


@pytest.mark.parametrize("scope, mode", [("model", "forward"), ("model", "train"), ("layer", "backward")])
def test_model_flops_are_attention_plus_the_dense_formula(scope, mode):
    (case,) = make_cases(["full-explicit"], [256], scope=scope, mode=mode, threads=1)
    row = run_case(case, MeasureOptions(metrics=("flops",)))
    dense = dense_flops(case.batch, 256, case.heads, case.head_dim, ModelShape(layers=case.layers), scope)
    expected = row["flops_attention"] + dense * (1 if mode == "forward" else 3)
    assert row["flops"] == pytest.approx(expected, rel=0.01)
    assert row["flops"] == pytest.approx(row["flops_analytic"], rel=0.01)


def test_model_scope_defaults_to_the_lra_shape_and_checks_its_inputs():
    (case,) = make_cases(["full"], [128], scope="model")
    assert (case.heads, case.head_dim, case.layers, case.ffn_dim, case.vocab) == (2, 32, 2, 128, 512)
    (attention,) = make_cases(["full"], [128])
    assert (attention.scope, attention.layers, attention.ffn_dim, attention.vocab) == ("attention", None, None, None)


@pytest.mark.parametrize("args, message", [
    (["run", "--mode", "train"], "--mode train needs a model to train: add --scope layer or --scope model"),
    (["run", "--scope", "organ"], "--scope must be one of attention, layer, model"),
    (["run", "--layers", "3"], "describe a layer or model"),
    (["run", "--scope", "model", "--inputs", "pretrained", "--head-dim", "32"], "come from the layer's own"),
    (["run", "--scope", "layer", "--vocab", "100"], "--layers and --vocab are for --scope model"),
    (["run", "--scope", "model", "--metrics", "error"], "the error metric compares attention outputs"),
])
def test_scope_mistakes_are_one_line_errors(args, message):
    result = cli(*args, "-n", "64")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr


def test_skyformer_targeting_softmax_with_every_row_as_landmark_is_softmax():
    q, k, v = qkv(n=64, scale=0.5)
    fn = build("skyformer", Shape(1, 2, 64, 16), gamma=0.0, inverse="pinv", target="softmax")
    fn.idx = torch.arange(2 * 64)  # all 2n rows of [Q; K]
    exact = torch.softmax(q @ k.transpose(-1, -2) / 16**0.5, dim=-1) @ v
    torch.testing.assert_close(fn(q, k, v), exact, rtol=1e-5, atol=1e-5)
    assert create_method("skyformer", target="softmax").exact_target == "full"
    assert create_method("skyformer").exact_target == "kernelized"


@pytest.mark.slow
def test_skyformer_error_against_softmax_falls_as_features_grow():
    cases = make_cases(["skyformer"], [512], {"target": ["softmax"], "features": [32, 128, 512]}, heads=2,
                       head_dim=32, threads=1)
    errors = [run_case(c, MeasureOptions(metrics=("error",)))["error_spectral"] for c in cases]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1.0
