"""Capture a model's attention calls to a file, and read them back as a case's q, k, v.

`attnbench capture MODEL -o FILE` runs one forward of a Hugging Face model (attnbench.hf.seam) and
records, for every attention call (one per layer), the q, k, v the attention function received
(after RoPE and projections; the model's own score scaling folded into q), the mask kind with
its sliding window and soft-capping, the shapes, and the model's own attention output for that
call. The file is safetensors: tensors `layer<i>.q`, `.k`, `.v`, `.out`, all (batch, heads,
length, head_dim), and in its metadata the format and its version, the model and how it was run,
and a JSON list of the layers' records.

`run --inputs capture:FILE` reads a layer's tensors (attnbench.execute.calls.make_inputs) and checks the
file is the one the cases were made from (its SHA-256, an identity column).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from attnbench.errors import AttnbenchError
from attnbench.plan.sources import FORMAT, VERSION, LayerRecord, read_header


def parse_layers(text: str | None, layers: int) -> list[int]:
    """'0,5,11' -> [0, 5, 11], each checked against the model's layers; None -> every layer."""
    if text is None:
        return list(range(layers))
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise AttnbenchError(f"--layers takes layer numbers separated by commas (e.g. 0,5,11), not {text!r}") from None
    outside = [i for i in chosen if not 0 <= i < layers]
    if outside or not chosen:
        raise AttnbenchError(f"--layers {text}: the model has layers 0..{layers - 1}")
    return chosen


@dataclass
class Captured:
    """What one forward recorded, before it is written."""

    tensors: dict
    metadata: dict

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def capture(model: str, *, text: str | None = None, seq: int | None = None, layers: str | None = None,
            seed: int = 0, on_layer: Callable[[int, int], None] | None = None) -> Captured:
    """Run MODEL once and record its attention calls (every layer, or `layers`, e.g. '0,5,11');
    `on_layer(done, total)` after each call. Measuring code: nothing is printed."""
    import torch
    import transformers

    import attnbench
    from attnbench.hf.seam import intercept, load, token_ids, token_source

    loaded = load(model, seed)
    loaded.restore_float32("cpu")  # as loaded: a swap case may have moved or cast the cached model
    keep = parse_layers(layers, loaded.layers)
    source = token_source(text, seq)
    ids = token_ids(loaded, source, seq, seed)
    tensors, records = {}, []

    def record(call, original):
        out = original()
        if call.index in keep:
            b, h, q_len, d = call.q.shape
            records.append(LayerRecord(call.index, b, h, call.k.shape[1], d, q_len, call.k.shape[-2], call.mask,
                                       call.unsupported, call.scaling, call.window, call.softcap))
            for name, tensor in (("q", call.q), ("k", call.k), ("v", call.v), ("out", out)):
                tensors[f"layer{call.index}.{name}"] = tensor.detach().float().contiguous().clone()
        if on_layer:
            on_layer(call.index + 1, loaded.layers)
        return out

    with torch.no_grad(), intercept(loaded, record) as forward:
        forward(input_ids=ids)
    if not records:
        raise AttnbenchError(f"{loaded.architecture} made no attention call through transformers' "
                             "AttentionInterface, so there is nothing to capture")
    tokens = f"ids (seed {seed})" if source == "ids" else source
    metadata = {"format": FORMAT, "format_version": VERSION, "model": model, "architecture": loaded.architecture,
                "weights": loaded.weights, "tokens": f"{tokens}, {ids.shape[1]} tokens",
                "layers": json.dumps([asdict(r) for r in records]), "attnbench_version": attnbench.__version__,
                "transformers_version": transformers.__version__, "torch_version": torch.__version__}
    return Captured(tensors, metadata)


def write(captured: Captured, path: str | Path) -> None:
    """Write atomically (a partial file never carries the final name); the caller refuses an
    existing target. The file takes the user's umask, as any file they write (safetensors
    writes 0600)."""
    from safetensors.torch import save_file

    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    save_file(captured.tensors, str(partial), metadata=captured.metadata)
    os.chmod(partial, 0o666 & ~_umask())
    os.replace(partial, path)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: set back at once
    os.umask(mask)
    return mask


def layer_tensors(path: str, sha256: str | None, layer: int):
    """(q, k, v, out) of a layer, after checking the file is the one the case was made from."""
    from safetensors import safe_open

    header = read_header(path)
    if sha256 and header.sha256 != sha256:
        raise AttnbenchError(f"{path} changed since the cases were made (SHA-256 {header.sha256}, the case's "
                             f"{sha256}); run the cases again")
    header.layer(layer)
    with safe_open(path, framework="pt") as f:
        return tuple(f.get_tensor(f"layer{layer}.{name}") for name in ("q", "k", "v", "out"))
