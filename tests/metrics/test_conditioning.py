"""The conditioning metric: exact figures against dense computations, the Nystrom and row-sum
figures at their exact limits, and every method filling its columns or saying why not."""

import pytest
import torch

from attnbench.execute.runner import run_case
from attnbench.measure.conditioning import exact_row_sums, inverse_figures, score_figures
from attnbench.methods.registry import list_methods
from attnbench.plan.case import MeasureOptions, make_cases

OPTIONS = MeasureOptions(metrics=("conditioning",))


def test_score_figures_equal_the_dense_computation(monkeypatch):
    from attnbench.measure import conditioning

    monkeypatch.setattr(conditioning, "ROW_BLOCK_BYTES", 4096)  # many blocks of rows
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(2, 3, 50, 8, generator=g, dtype=torch.float64) * 2 for _ in range(2))
    scores = q @ k.transpose(-1, -2) / 8**0.5
    weights = torch.softmax(scores, -1)
    found = score_figures(q, k)
    assert found["cond_score_max"] == pytest.approx(float(scores.abs().max()))
    assert found["cond_peak_weight_mean"] == pytest.approx(float(weights.amax(-1).mean()))
    entropy = -(weights * weights.log()).sum(-1).mean() / torch.log(torch.tensor(50.0))
    assert found["cond_entropy_fraction"] == pytest.approx(float(entropy))
    shift = torch.randn(2, 3, 50, generator=g, dtype=torch.float64)
    assert torch.allclose(exact_row_sums(q, k, shift=shift), (q @ k.transpose(-1, -2) - shift[..., None]).exp().sum(-1))


def test_inverse_figures_see_a_singular_landmark_matrix():
    m = torch.eye(4, dtype=torch.float64).expand(2, 4, 4).clone()
    m[1, 3, 3] = 0.0  # rank 3
    found = inverse_figures(m, torch.linalg.pinv(m))
    assert found["cond_landmark_rank"] == 3 and found["cond_landmark_condition"] == float("inf")
    assert found["cond_inverse_residual"] == pytest.approx(1.0)  # I - Z M keeps the lost direction


def _row(method, n=64, **setup):
    params = {k: [v] for k, v in setup.pop("params", {}).items()}
    (case,) = make_cases([method], [n], params, heads=2, head_dim=16, threads=1, **setup)
    row = run_case(case, OPTIONS)
    assert row["status"] == "ok", row["status_detail"]
    return row


def test_at_the_exact_limit_nystrom_is_well_posed_and_its_rows_sum_to_one():
    row = _row("nystromformer", dtype="float64", params={"landmarks": 64, "inverse": "pinv"})
    assert row["cond_landmark_rank"] == 64 and row["cond_inverse_residual"] < 1e-8
    assert row["cond_row_sum_ratio_min"] == pytest.approx(1.0, abs=1e-8) and row["cond_row_sums_low"] == 0.0


def test_approximated_row_sums_track_the_exact_ones_where_the_approximation_is_good():
    skyformer = _row("skyformer", dtype="float64", input_scale=0.3,
                     params={"target": "softmax", "features": 128, "gamma": 0.0, "inverse": "pinv"})
    assert skyformer["cond_row_sum_ratio_min"] == pytest.approx(1.0, abs=0.01)
    performer = _row("performer", dtype="float64", input_scale=0.3, params={"features": 2048})
    assert 0.8 < performer["cond_row_sum_ratio_min"] <= 1.2
    # Large scores break both: Skyformer's approximated sums fall far below the exact ones.
    peaked = _row("skyformer", input_scale=3.0, params={"target": "softmax", "features": 16})
    assert peaked["cond_row_sums_low"] > 0.1 and peaked["cond_score_max"] > 20


@pytest.mark.parametrize("method", list_methods())
def test_every_method_fills_the_columns_or_says_why_not(method, request):
    if method == "flex":  # the columns are the subject: Dynamo's eager backend, no inductor build
        request.getfixturevalue("eager_compile")
    (case,) = make_cases([method], [128], heads=2, head_dim=16, threads=1)
    row = run_case(case, OPTIONS)
    if row["status"] == "unsupported":
        pytest.skip(row["status_detail"])
    assert row["status"] == "ok", row["status_detail"]
    assert row["cond_score_max"] > 0 and 0 < row["cond_peak_weight_mean"] <= 1
    for figure, reason in (("cond_landmark_condition", "no landmark matrix"),
                           ("cond_row_sum_ratio_min", "no approximated row sums")):
        assert (row[figure] is None) == (reason in row["cond_not_applicable"]), (figure, row["cond_not_applicable"])


def test_conditioning_is_refused_outside_attention_scope():
    from attnbench.errors import AttnbenchError
    from attnbench.plan.scenario import scenario_from_dict

    with pytest.raises(AttnbenchError, match="attention"):
        scenario_from_dict({"methods": ["full"], "seq": 64, "scope": "layer", "metrics": ["conditioning"]},
                           "test").cases()


def test_input_scale_takes_a_list_as_a_grid():
    from tests.conftest import cli

    result = cli("run", "-m", "full", "-n", "32", "--heads", "1", "--head-dim", "8", "--input-scale", "0.5,1,2",
                 "--metrics", "conditioning", "-o", "-")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    header = lines[0].split(",")
    scales = [float(line.split(",")[header.index("input_scale")]) for line in lines[1:]]
    maxima = [float(line.split(",")[header.index("cond_score_max")]) for line in lines[1:]]
    assert scales == [0.5, 1.0, 2.0] and maxima[0] < maxima[1] < maxima[2]  # scores grow as the square
    bad = cli("run", "-m", "full", "-n", "32", "--input-scale", "0.5,x")
    assert bad.returncode != 0 and "--input-scale takes a positive number" in bad.stderr
