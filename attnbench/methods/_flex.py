"""FlexAttention (torch.nn.attention.flex_attention) as the sparse methods' second backend.

A pattern is a `mask_mod(b, h, q_idx, kv_idx) -> bool`; `create_block_mask` turns it into the
block-sparse layout FlexAttention skips empty blocks with (built once, in `build`, so its cost
is in build_ms). The kernel is only fast compiled: eager flex_attention materializes the scores,
which would misreport every figure, so an environment that cannot compile it (no C++ compiler on
CPU, no Triton on GPU) makes the case 'unsupported' instead.
"""

from __future__ import annotations

import functools

import torch

from attnbench.methods.contract import Shape, Unsupported, stage

BLOCK = 128  # FlexAttention's default block: a block mask skips work in 128 x 128 tiles
# One process compiles FlexAttention again for every length, grad mode and mask of a run. Past
# Dynamo's recompile limit (8 by default) a compiled function silently runs eagerly, and eager
# FlexAttention materializes the n x n scores: the limit is raised as attention-gym raises it, and
# a case past it fails (an 'error' row) instead of measuring the eager kernel.
RECOMPILE_LIMIT = 1000
# Dynamo's names for them (torch 2.7 on), and before (its "cache size" limits)
RECOMPILE_SETTINGS = ("recompile_limit", "accumulated_recompile_limit", "fail_on_recompile_limit_hit")
CACHE_SETTINGS = ("cache_size_limit", "accumulated_cache_size_limit", "fail_on_cache_limit_hit")


AUTOTUNED = "max-autotune-no-cudagraphs"


def compile_mode(device, autotune: bool = False) -> str:
    """The torch.compile mode of the kernel: torch.compile's default, or, where a row asks for it
    (flex's `autotune`, on CUDA), attention-gym's benchmark mode: autotuned Triton configurations
    (tens of seconds to minutes per shape), no CUDA graphs (those are --cuda-graphs' to choose).
    CPU autotuning costs minutes and gains little: there the default always."""
    return AUTOTUNED if autotune and torch.device(device).type == "cuda" else "default"


def _raise_recompile_limits() -> None:
    import torch._dynamo.config as dynamo

    limit, accumulated, fail = RECOMPILE_SETTINGS if hasattr(dynamo, RECOMPILE_SETTINGS[0]) else CACHE_SETTINGS
    setattr(dynamo, limit, max(getattr(dynamo, limit), RECOMPILE_LIMIT))
    setattr(dynamo, accumulated, max(getattr(dynamo, accumulated), RECOMPILE_LIMIT))
    setattr(dynamo, fail, True)


@functools.cache
def compiled_flex(mode: str = "default"):
    from torch.nn.attention.flex_attention import flex_attention

    _raise_recompile_limits()
    return torch.compile(flex_attention, dynamic=False, mode=mode)


# Eagerly, create_block_mask evaluates mask_mod on every query-key pair at once: q_len x seq_len
# elements and, for a mask that looks a position up (packed documents), int64 indices of that
# size (8 GB at 32k). Past this many pairs it is compiled, and reduces block by block instead.
EAGER_MASK_PAIRS = 2**26


@functools.cache
def _compiled_block_mask():
    from torch.nn.attention.flex_attention import create_block_mask

    _raise_recompile_limits()
    return torch.compile(create_block_mask, dynamic=False)


def block_mask(mask_mod, shape, device, per_head: bool):
    """The BlockMask of `mask_mod` for (batch, heads, q_len, seq_len); heads share one unless `per_head`."""
    from torch.nn.attention.flex_attention import create_block_mask

    n, heads = shape.seq_len, shape.heads if per_head else None
    pairs = shape.q_len * n * (heads or 1)
    create = _compiled_block_mask() if pairs > EAGER_MASK_PAIRS else create_block_mask
    try:
        return create(mask_mod, B=None, H=heads, Q_LEN=shape.q_len, KV_LEN=n, device=device,
                      BLOCK_SIZE=min(BLOCK, n))
    except _compile_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unsupported(f"the block mask of {pairs} pairs needs a compiled create_block_mask, which does not "
                          f"compile here ({first})") from None


def softcap_mod(cap: float | None):
    """FlexAttention's score_mod of logit soft-capping: tanh(s / cap) * cap on the scaled score."""
    if cap is None:
        return None

    def capped(score, b, h, q_idx, kv_idx):
        return torch.tanh(score / cap) * cap
    return capped


def _compile_errors() -> tuple[type, ...]:
    from torch._dynamo.exc import BackendCompilerFailed

    try:
        from torch._inductor.exc import InductorError
    except ImportError:
        return (BackendCompilerFailed,)
    return (BackendCompilerFailed, InductorError)


class FlexAttention:
    """fn(q, k, v): compiled FlexAttention over a block mask (None: every pair, exact attention).
    The first call compiles (the runner reports it as compile_s); if this environment cannot
    compile it, or FlexAttention does not run the case here (float64, or a backward, on CPU), that
    call raises Unsupported with the first line of the reason."""

    def __init__(self, name: str, mask=None, grouped: bool = False, autotune: bool = False, device=None,
                 score_mod=None) -> None:
        self.name, self.block_mask, self.compiled, self.grouped = name, mask, False, grouped
        self.score_mod = score_mod
        where = device if device is not None else mask.kv_num_blocks.device if mask is not None else "cpu"
        # Looked up here, at build, never inside a call: under --compile the call is traced, and
        # Dynamo would trace through the cache and the inner torch.compile instead.
        self.kernel = compiled_flex(compile_mode(where, autotune))

    def __call__(self, q, k, v):
        with stage("flex kernel"):
            return self._call(q, k, v)

    def _call(self, q, k, v):
        if self.compiled:  # the first call compiled: nothing more in the timed ones
            return self.kernel(q, k, v, score_mod=self.score_mod, block_mask=self.block_mask, enable_gqa=self.grouped)
        try:
            out = self.kernel(q, k, v, score_mod=self.score_mod, block_mask=self.block_mask, enable_gqa=self.grouped)
        except NotImplementedError as exc:  # e.g. no backward on CPU
            raise Unsupported(f"{self.name}: {str(exc).strip().splitlines()[0]}") from None
        except _compile_errors() as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Unsupported(f"{self.name}: FlexAttention does not compile here ({first})") from None
        self.compiled = True
        return out


def tile_scores(mask, shape) -> float:
    """Query-key scores FlexAttention computes over the batch with this block mask: every pair of
    each tile the mask does not skip (a partly masked tile is computed whole; a tile at the end
    of a length that is not a multiple of the block holds only the rows and keys that exist)."""
    import torch

    table = mask.to_dense().to(torch.float64)  # (B, H, q blocks, kv blocks): 1 where a tile is computed
    rows, keys = (_block_sizes(length, block, count) for length, block, count in
                  zip(mask.seq_lengths, mask.BLOCK_SIZE, table.shape[-2:]))
    shared = shape.rows // (table.shape[0] * table.shape[1])  # broadcast over b, h
    return float((table * rows.view(-1, 1) * keys.view(1, -1)).sum()) * shared


def _block_sizes(length: int, block: int, count: int):
    import torch

    sizes = torch.full((count,), float(block), dtype=torch.float64)
    sizes[-1] = length - block * (count - 1)
    return sizes


def flex_memory_bytes(shape, itemsize: int, mode: str) -> float:
    """Like SDPA's fused kernels: the output and float32 row statistics (dq, dk, dv in backward)."""
    queries = shape.rows * shape.q_len * shape.head_dim * itemsize
    keys = shape.batch * shape.keys_heads * shape.seq_len * shape.head_dim * itemsize
    logsumexp = shape.rows * shape.q_len * 4
    return (queries if mode == "forward" else 2 * queries + 2 * keys) + logsumexp


def flex_flops(shape, scores: float | None, mode: str = "forward") -> float | None:
    """FLOPs of FlexAttention over `scores` computed pairs: Q K^T and P V forward; the backward
    recomputes the scores and adds four gradient matmuls (2.5x the forward, as SDPA's)."""
    if scores is None:
        return None
    return (4 if mode == "forward" else 10) * scores * shape.head_dim


BACKEND_HELP = ("reference (blockwise, gathering the keys each query block attends) or flex (the same pattern as a "
                "FlexAttention block mask, compiled; FLOPs count the 128 x 128 tiles it computes)")


class FlexBackend:
    """What `backend=flex` changes in a sparse method that is not about its pattern: its kernel is
    compiled, FlopCounterMode cannot run it, its scores are the tiles the block mask computes, and
    its backward costs what FlexAttention's does. Put it before Method in the bases; the method
    keeps its own flops and memory formulas, which call flex_flops / flex_memory_bytes for flex."""

    def compiled(self) -> bool:
        return self.backend == "flex"

    def compile_mode(self, device) -> str:
        return compile_mode(device) if self.backend == "flex" else ""

    def flops_countable(self) -> bool:
        return self.backend != "flex"

    def diagnostics(self, fn, q, k, v) -> dict:
        return {"scores_computed": tile_scores(fn.block_mask, Shape(*q.shape))} if self.backend == "flex" else {}

    def backward_flops(self, shape, scores=None) -> float | None:
        if self.backend == "flex":
            return flex_flops(shape, scores, "backward")
        return super().backward_flops(shape, scores)
