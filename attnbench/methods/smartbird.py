"""Smart Bird (Wu et al., 2021, arXiv:2108.09193): a tiny single-head sketch attention picks,
per head, which keys each query attends.

1. Sketch: a single-head attention of dimension `sketch_dim` gives A = softmax(Qs Ks^T / sqrt(d)),
   n x n per sequence. The paper trains a tiny Transformer on the task; a benchmark trains
   nothing, so the stand-in keeps the sketch's shape and cost: Qs and Ks are fixed, seeded
   Gaussian projections of all heads' queries and keys (D = heads * head_dim -> sketch_dim),
   one sketch shared by the heads, computed without gradients (selection is discrete).
2. Sampling, per head independently (eqs. 2-3): p_ij = (1 / log A_ij)^2, s_ij ~ U(0, p_ij), and
   the top `k` keys of each row by s. `rule` also offers the Fig. 4 ablations: inverse_log
   (p = -1 / log A), raw (p = A), topk (the k largest A, no sampling) and random (s ~ U(0, 1)).
3. Sparse attention: gather the k selected keys and values (n x k x head_dim per head) and
   attend over them only.
Rows are processed in chunks, so the sketch and its sampling never hold all n^2 scores at once;
the sketch and the h * n^2 uniform draws keep their O(n^2) cost, as in the paper (Table 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnbench.methods._sampled import SampledHooks
from attnbench.methods.contract import Method, Shape, param, stage

PAPER = ("Wu et al. 2021, Smart Bird: Learnable Sparse Attention for Efficient and Effective Transformer, "
         "arXiv:2108.09193")
RULES = ("inverse_log_sq", "inverse_log", "raw", "topk", "random")
CHUNK_ELEMENTS = 2**24  # sampling scores held at once (64 MiB in float32)


def chunk_rows(shape: Shape, chunk: int) -> int:
    """Rows per chunk: as given, or as many as keep heads x rows x n within CHUNK_ELEMENTS."""
    return chunk or max(1, min(shape.seq_len, CHUNK_ELEMENTS // (shape.rows * shape.seq_len)))


def sampling_scores(sketch: torch.Tensor, heads: int, rule: str, generator: torch.Generator) -> torch.Tensor:
    """(b, rows, n) sketch weights -> (b, heads, rows, n) scores whose row top-k is the selection."""
    b, rows, n = sketch.shape
    if rule == "topk":
        return sketch.unsqueeze(1).expand(b, heads, rows, n)
    scores = torch.rand(b, heads, rows, n, generator=generator, device=sketch.device, dtype=sketch.dtype)
    if rule == "random":
        return scores
    alpha = sketch.clamp(max=1 - 1e-6)  # log(1) = 0 would make p infinite
    bound = {"inverse_log_sq": lambda a: a.log().reciprocal_().square_(),
             "inverse_log": lambda a: a.log().reciprocal_().neg_(),
             "raw": lambda a: a}[rule](alpha)
    return scores.mul_(bound.unsqueeze(1))  # s ~ U(0, p)


class SmartBirdAttention:
    """fn(q, k, v); `sketch`, `select` and `attend` are the three phases, timed apart by benchmarks."""

    def __init__(self, method: "SmartBird", shape: Shape, device, dtype, generator: torch.Generator) -> None:
        width = shape.heads * shape.head_dim
        self.method, self.rows = method, chunk_rows(shape, method.chunk)

        def draw():
            return torch.randn(width, method.sketch_dim, generator=generator).to(device, dtype) / math.sqrt(width)

        self.w_q, self.w_k = draw(), draw()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        self.sampler = torch.Generator(device=device).manual_seed(seed)  # fresh draws every call

    def sketch_inputs(self, q, k):
        """All heads' queries and keys projected to the sketch dimension: (b, n, sketch_dim) each."""
        b, h, n, p = q.shape
        return q.transpose(1, 2).reshape(b, n, h * p) @ self.w_q, k.transpose(1, 2).reshape(b, n, h * p) @ self.w_k

    def sketch(self, qs, ks, start: int, stop: int):
        """Sketch attention rows start:stop, (b, rows, n)."""
        return torch.softmax(qs[:, start:stop] @ ks.transpose(1, 2) * qs.shape[-1] ** -0.5, dim=-1)

    def select(self, sketch_rows, heads: int):
        """Indices of the k keys each query attends, per head: (b, heads, rows, k)."""
        scores = sampling_scores(sketch_rows, heads, self.method.rule, self.sampler)
        return scores.topk(min(self.method.k, scores.shape[-1]), dim=-1, sorted=False).indices

    @staticmethod
    def attend(q_rows, k, v, index):
        """Softmax attention of q_rows (b, h, rows, p) over the gathered keys and values only."""
        b, h, n, p = k.shape
        offsets = torch.arange(b * h, device=k.device).view(b, h, 1, 1) * n
        flat = (index + offsets).reshape(-1)  # index_select: its backward is one index_add
        keys = k.reshape(b * h * n, p).index_select(0, flat).view(*index.shape, p)
        values = v.reshape(b * h * n, -1).index_select(0, flat).view(*index.shape, v.shape[-1])
        weights = torch.softmax(torch.einsum("bhrp,bhrkp->bhrk", q_rows, keys) * p**-0.5, dim=-1)
        return torch.einsum("bhrk,bhrkp->bhrp", weights, values)

    def __call__(self, q, k, v):
        n = q.shape[-2]
        with torch.no_grad(), stage("sketch attention"):
            qs, ks = self.sketch_inputs(q, k)
        outputs = []
        for start in range(0, n, self.rows):  # row blocks: O(rows x n) sampling memory
            stop = min(start + self.rows, n)
            with torch.no_grad():
                with stage("sketch attention"):
                    sketch_rows = self.sketch(qs, ks, start, stop)
                with stage("per-head sampling"):
                    index = self.select(sketch_rows, q.shape[1])
            with stage("sparse attention"):
                outputs.append(self.attend(q[:, :, start:stop], k, v, index))
        with stage("sparse attention"):
            return torch.cat(outputs, dim=2)

    def indices(self, q, k):
        """The full (b, h, n, k) selection of one call, for tests and pattern pictures."""
        with torch.no_grad():
            qs, ks = self.sketch_inputs(q, k)
            return torch.cat([self.select(self.sketch(qs, ks, s, min(s + self.rows, q.shape[-2])), q.shape[1])
                              for s in range(0, q.shape[-2], self.rows)], dim=2)

    def sampled_mask(self, q, k) -> torch.Tensor:
        """One draw of the selections as a dense (b, h, n, n) bool tensor (small n only)."""
        index = self.indices(q, k)
        return torch.zeros(*q.shape[:3], q.shape[2], dtype=torch.bool, device=q.device).scatter_(-1, index, True)

    def diagnostics(self, q, k, v) -> dict[str, float]:
        b, _, n, _ = q.shape
        return {"sketch_scores": float(b * n * n)}


@dataclass(frozen=True)
class SmartBird(SampledHooks, Method):
    """Smart Bird: a sketch attention drives per-head top-k token sampling; gathered sparse attention."""

    paper = PAPER
    refusals = {"causal": ("smartbird's sketch attention and per-head token sampling look at the whole "
                           "sequence; its paper defines no causal form")}
    stages = ("sketch attention", "per-head sampling", "sparse attention")
    extra_columns = ("sketch_scores",)
    column_help = {"sketch_scores": "entries of its n x n sketch attention, which sparsity does not count"}

    sketch_dim: int = param(4, "d of the single-head sketch attention; its Q/K come from a fixed seeded Gaussian "
                            "projection standing in for the paper's trained tiny Transformer", low=1)
    k: int = param(20, "keys attended per query (top-k of the sampling scores); at most n: a larger k is refused",
                   low=1)
    rule: str = param("inverse_log_sq", "sampling rule: the paper's (1/log a)^2 or a Fig. 4 ablation", choices=RULES)
    chunk: int = param(0, "query rows per block of the sketch and sampling; 0 = auto (64 MiB of scores)", low=0)

    def unsupported(self, shape, mode):
        return self.too_large("k", shape.seq_len, "a query has n keys") or super().unsupported(shape, mode)

    def build(self, shape, *, device, dtype, generator):
        return SmartBirdAttention(self, shape, device, dtype, generator)

    def _attention_flops(self, shape: Shape) -> float:
        return 4 * shape.rows * shape.seq_len * min(self.k, shape.seq_len) * shape.head_dim

    def flops(self, shape: Shape, scores=None) -> float:
        b, n, width = shape.batch, shape.seq_len, shape.heads * shape.head_dim
        sketch = 2 * (2 * b * n * width * self.sketch_dim) + 2 * b * n * n * self.sketch_dim
        return sketch + self._attention_flops(shape)

    def backward_flops(self, shape: Shape, scores=None) -> float:
        return 2 * self._attention_flops(shape)  # the selection is discrete: no gradient to the sketch

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len * min(self.k, shape.seq_len)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        b, h, n, p = shape.batch, shape.heads, shape.seq_len, shape.head_dim
        rows, k = chunk_rows(shape, self.chunk), min(self.k, n)
        chunk = b * rows * n * (h + 2) * itemsize + b * h * rows * k * (8 + 2 * p * itemsize)
        out = (b * h * n * p + 2 * b * n * self.sketch_dim) * itemsize
        if mode == "forward":
            return chunk + out
        return chunk + out + b * h * n * k * (8 + 3 * p * itemsize) + 3 * b * h * n * p * itemsize
