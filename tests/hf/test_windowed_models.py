"""Models with sliding windows and soft-capping (tiny Mistral and Gemma 2 from a config.json
alone): capture records them, and the exact methods reproduce the models' own outputs."""

import pytest
import torch

pytest.importorskip("transformers")

from attnbench.execute.runner import run_case  # noqa: E402
from attnbench.hf.capture import capture, layer_tensors, write  # noqa: E402
from attnbench.hf.swap import swap_cases  # noqa: E402
from attnbench.methods.registry import create_method  # noqa: E402
from attnbench.plan.case import MeasureOptions, make_cases  # noqa: E402
from attnbench.plan.sources import read_header  # noqa: E402

TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, sliding_window=16)
# Gemma 2: layer 0 slides, layer 1 is global; both soft-cap their scores at 50 unless told not to;
# its scores are scaled by query_pre_attn_scalar^-1/2, here 24 (not head_dim's 16) to see it folded.
GEMMA = dict(TINY, head_dim=16, query_pre_attn_scalar=24)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import Gemma2Config, MistralConfig

    root = tmp_path_factory.mktemp("windowed")
    MistralConfig(**TINY).save_pretrained(root / "mistral")
    Gemma2Config(**GEMMA, attn_logit_softcapping=20.0).save_pretrained(root / "gemma2")
    Gemma2Config(**GEMMA, attn_logit_softcapping=None).save_pretrained(root / "gemma2-uncapped")
    return {name: str(root / name) for name in ("mistral", "gemma2", "gemma2-uncapped")}


EXPECTED = {"mistral": [(16, None), (16, None)], "gemma2": [(16, 20.0), (None, 20.0)],
            "gemma2-uncapped": [(16, None), (None, None)]}


@pytest.mark.parametrize("model", EXPECTED)
def test_capture_records_each_layers_window_and_softcap_and_full_explicit_reproduces_it(models, model, tmp_path):
    path = tmp_path / f"{model}.safetensors"
    write(capture(models[model], seq=64), path)
    header = read_header(path)
    assert [(r.mask, r.window, r.softcap) for r in header.layers] == [("causal", *e) for e in EXPECTED[model]]
    for record, case in zip(header.layers, make_cases(["full-explicit"], [], inputs=f"capture:{path}", layer="all")):
        assert (case.window, case.softcap, case.causal) == (record.window, record.softcap, True)
        q, k, v, out = layer_tensors(str(path), header.sha256, record.layer)
        fn = create_method("full-explicit").make(case.shape, device="cpu", dtype=torch.float64,
                                                 generator=torch.Generator())
        assert float((fn(q.double(), k.double(), v.double()) - out).abs().max() / out.abs().max()) < 1e-5


@pytest.mark.parametrize("model", EXPECTED)
def test_swap_with_exact_attention_reproduces_the_model(models, model):
    methods = ["full", "full-explicit", "linear"]
    rows = {c.method: run_case(c, MeasureOptions(metrics=("swap",))) for c in swap_cases(models[model], methods,
                                                                                           seq=64)}
    capped = model == "gemma2"
    for name, row in rows.items():
        assert (row["window"], row["softcap"]) == (16, 20.0 if capped else None)
        if name == "linear":  # no form with a sliding window: refused, never run without it
            assert row["status"] == "unsupported" and "sliding window" in row["status_detail"]
        elif name == "full" and capped:
            assert row["status"] == "unsupported" and "cannot change the scores" in row["status_detail"]
        else:
            assert row["status"] == "ok" and row["swap_hidden_error"] < 1e-5 and row["swap_kl_nats"] < 1e-9, row


def test_a_window_longer_than_the_input_is_recorded_and_refuses_no_method(models):
    (row,) = [run_case(c, MeasureOptions(metrics=("swap",))) for c in swap_cases(models["mistral"], ["linear"], seq=16)]
    assert row["status"] == "ok" and row["window"] == 16 and row["swap_hidden_error"] > 1e-3
