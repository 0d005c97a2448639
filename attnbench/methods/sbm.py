"""SBM-Transformer (Cho et al., NeurIPS 2022, arXiv:2210.15541): each head samples a bipartite
query-key graph from a stochastic block model and attends over the sampled edges only.

Per head (eqs. 5-8): cluster embeddings C (k x p, Kaiming normal), one 2-layer MLP shared by
heads, queries and keys; S = softmax over all k^2 entries of C C^T; memberships
X = sigmoid(MLP(Q) C^T), Y = sigmoid(MLP(K) C^T); expected adjacency P = X S Y^T, plus the
exploration delta on every pair.

`variant=fastrg` (the paper) samples the mask with fastRG (Alg. 1) in time and memory linear in
the number of edges, never forming P. Poisson splitting gives every edge the block pair it was
drawn for: edges leaving query i through block u number Poisson(X_iu (S 1^T Y)_u), and each
lands on key j with probability proportional to (Y S^T)_ju. Drawing those counts in query order
yields the edges already grouped by query row (a CSR matrix with no sort), and each block's
key draws come from one batched inverse-CDF search. Exploration is one more block with uniform
keys and rate delta * n per query. Attention runs on sparse kernels: `sampled_addmm` for the
scores of sampled edges, a softmax over each row's edges, and a CSR @ dense product.
The paper's mask is binary, so repeated edges are merged (`multi_edges=true` keeps them, as the
official fastRG code does: a repeated edge then counts twice in its row's softmax).

`variant=bernoulli` is what the released code runs: P formed densely, every pair drawn as a
Bernoulli(clamp(P + delta, 0, 1)); O(n^2), for checking.

Backward (eq. 9, straight-through): the mask enters as M * scores with M = 1 on sampled edges
in the forward pass, and dL/dp_ij := dL/dM_ij, so gradients reach C and the MLP through the
probabilities of the sampled edges.

No training happens in a benchmark; at initialisation about a quarter of all pairs are sampled
(paper, appendix C). `density` rescales the expected adjacency (delta included) so that the
mean density over the batch and heads is the target, e.g. 0.01 for the 1-10% regimes the
paper reports after its sparsity regulariser (Table 2).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from attnbench.methods._sampled import SampledHooks
from attnbench.methods.contract import Method, Shape, Unsupported, param, stage

PAPER = "Cho et al. 2022, Transformers meet Stochastic Block Models, arXiv:2210.15541"
# torch flags every CSR tensor as beta; the kernels used here are the documented ones.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def _index_dtype(largest: int) -> torch.dtype:
    """int32 indices where they fit: half the memory traffic of int64 for every per-edge step."""
    return torch.int32 if largest < 2**31 - 1 else torch.int64


def fastrg_edges(x: torch.Tensor, s: torch.Tensor, y: torch.Tensor, *, delta: float, density: float,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Sample one multigraph per leading index with E[count of (i, j)] = c (x s y^T + delta)_ij.

    Args: x, y: (G, n, k) memberships (>= 0); s: (G, k, k) block matrix; delta: exploration
    added to every pair; density: target mean of c (P + delta) over all pairs, 0 for c = 1.
    Returns (rows, cols, c): edge rows g*n + i sorted ascending, key columns j in [0, n), scale.
    """
    graphs, n, k = x.shape
    blocks = k + 1
    with stage("edge probabilities"):  # the rates of the Poisson split and each block's key distribution
        rate = x * (s @ y.sum(1).unsqueeze(-1)).transpose(1, 2)  # (G, n, k): edges leaving i via u
        # Exploration is one more block, k: rate delta * n per query, keys uniform.
        rate = torch.cat([rate, rate.new_full((graphs, n, 1), delta * n)], dim=-1)
        scale = density * graphs * n * n / float(rate.sum()) if density > 0 else 1.0
        expected = float(rate.sum()) * scale
        # Keys of block u are drawn from column u of Y S^T (inverse CDF, one batched search).
        cdf = (y @ s.transpose(1, 2)).transpose(1, 2).reshape(graphs * k, n).cumsum(-1)
    with stage("fastRG sampling"):
        index = _index_dtype(max(graphs * n * blocks, int(2 * expected + 1000)))
        return (*_draw_edges(rate.mul_(scale), cdf, n, k, generator, index), scale)


def _draw_edges(rate, cdf, n: int, k: int, generator, index) -> tuple[torch.Tensor, torch.Tensor, float]:
    """fastRG's draws: Poisson counts per (query, block), then each edge's key from its block's pool."""
    graphs, device, blocks = rate.shape[0], rate.device, k + 1
    counts = torch.poisson(rate, generator=generator).to(index)  # (G, n, blocks), query order
    per_block = counts.sum(1, dtype=index)  # (G, blocks): edges each block's key pool must supply
    # Key pools, one flat array: a padded row per (g, u < k), then the exploration pools.
    width = int(per_block[:, :k].max())
    uniform = torch.rand(graphs * k, width, generator=generator, device=device, dtype=cdf.dtype)
    drawn = torch.searchsorted(cdf, uniform.mul_(cdf[:, -1:]), right=True, out_int32=index == torch.int32)
    explore = per_block[:, k]
    pool = torch.cat([drawn.clamp_(max=n - 1).view(-1),
                      torch.randint(0, n, (int(explore.sum()),), generator=generator, device=device, dtype=index)])
    pool_start = torch.cat([torch.arange(graphs * k, device=device, dtype=index).view(graphs, k) * width,
                            (graphs * k * width + explore.cumsum(0, dtype=index) - explore).unsqueeze(1)], dim=1)
    # Edge e of cell (g, i, u) takes the next unused key of pool (g, u): the pool's start, plus
    # the edges earlier queries sent through u, plus e's place within its cell.
    flat = counts.view(-1)
    base = counts.cumsum(1, dtype=index).sub_(counts).add_(pool_start.unsqueeze(1)).view(-1)
    base.sub_(flat.cumsum(0, dtype=index).sub_(flat))
    cell = torch.repeat_interleave(torch.arange(flat.numel(), device=device, dtype=index), flat)
    cols = pool[base[cell].add_(torch.arange(cell.numel(), device=device, dtype=index))]
    return cell.div_(blocks, rounding_mode="floor"), cols


def _merge_repeats(rows: torch.Tensor, cols: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary mask: keep one of each repeated (row, col) edge; rows stay sorted."""
    keys = rows.to(torch.int64).mul_(n).add_(cols)
    keys = torch.unique_consecutive(torch.sort(keys, stable=True).values)
    return (keys // n).to(rows.dtype), (keys % n).to(cols.dtype)


def edge_attention(q, k, v, rows, cols, edge_probs=None):
    """Softmax attention over given edges only (a mask), on sparse kernels; (b, h, n, p) in and out.

    rows, cols: edges of the block-diagonal (b*h*n)^2 matrix, rows sorted, one integer dtype.
    A query with no edge outputs 0. edge_probs: (X S, Y) to route the straight-through
    gradient to p_ij = (X S Y^T)_ij.
    """
    b, h, n, p = q.shape
    size = (b * h * n, b * h * n)  # one block-diagonal matrix holds every head's graph
    crow = torch.zeros(size[0] + 1, dtype=rows.dtype, device=q.device)
    crow[1:] = torch.bincount(rows, minlength=size[0]).cumsum(0)

    def csr(values):
        return torch.sparse_csr_tensor(crow, cols, values, size=size, check_invariants=False)

    def flat(t):
        return t.reshape(size[0], -1)

    with stage("sparse attention"):
        pattern = csr(q.new_zeros(rows.numel()))
        scores = torch.sparse.sampled_addmm(pattern, flat(q) * p**-0.5, flat(k).T, beta=0.0).values()
    if edge_probs is not None:
        with stage("STE"):
            probs = torch.sparse.sampled_addmm(pattern, flat(edge_probs[0]), flat(edge_probs[1]).T, beta=0.0).values()
            scores = scores * (1 + _StraightThrough.apply(probs))
    with stage("sparse attention"):
        # Softmax over each query's edges; the row max only steadies exp().
        rows = rows.long()  # scatter and index_add take int64 positions
        row_max = torch.full((size[0],), -torch.inf, device=q.device, dtype=q.dtype)
        row_max = row_max.scatter_reduce(0, rows, scores.detach(), "amax")
        weights = (scores - row_max[rows]).exp()
        total = weights.new_zeros(size[0]).index_add(0, rows, weights)
        return (csr(weights / total[rows]) @ flat(v)).view(b, h, n, v.shape[-1])


@functools.cache  # once per device and dtype: a build (the error metric builds each draw anew) pays nothing
def _check_sparse_kernels(device, dtype) -> None:
    """The sparse kernels edge_attention runs on exist for this device and dtype (torch has no
    bfloat16 sampled_addmm on CPU): otherwise the case is unsupported, never run in another dtype."""
    rows = torch.tensor([0, 1], device=device)
    q = torch.ones(2, 2, device=device, dtype=dtype)
    try:
        edge_attention(q.view(1, 1, 2, 2), q.view(1, 1, 2, 2), q.view(1, 1, 2, 2), rows, rows)
    except RuntimeError as exc:
        name, reason = str(dtype).removeprefix("torch."), str(exc).splitlines()[0]
        raise Unsupported(f"sbm: torch's sparse kernels do not run {name} here ({reason}); "
                          "use --dtype float32 or -p variant=bernoulli") from None


class _StraightThrough(torch.autograd.Function):
    """Forward 0, backward identity: M = 1 + STE(p) has value 1 and dM/dp = 1 (eq. 9)."""

    @staticmethod
    def forward(ctx, probs):
        return torch.zeros_like(probs)

    @staticmethod
    def backward(ctx, grad):
        return grad


class SBMAttention(nn.Module):
    def __init__(self, method: "SBM", shape: Shape, device, dtype, generator: torch.Generator) -> None:
        super().__init__()
        p, k = shape.head_dim, method.clusters
        self.method, self.heads = method, shape.heads
        # Weights are drawn on the CPU, where the generator is, then moved: the same on every device.
        self.clusters = nn.Parameter(torch.empty(shape.heads, k, p, dtype=dtype))
        nn.init.kaiming_normal_(self.clusters, nonlinearity="relu", generator=generator)
        self.mlp = nn.Sequential(nn.Linear(p, p), nn.ReLU(), nn.Linear(p, p)).to(dtype)
        for layer in (self.mlp[0], self.mlp[2]):  # torch's Linear default, from our generator
            nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=generator)
            nn.init.uniform_(layer.bias, -p**-0.5, p**-0.5, generator=generator)
        self.to(device)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        self.sampler = torch.Generator(device=device).manual_seed(seed)  # fresh graph every call

    def memberships(self, q, k):
        """X, Y: (b, h, n, k) memberships; S: (h, k, k), softmax over all k^2 entries (eqs. 5-7)."""
        with stage("cluster memberships"):
            c = self.clusters
            x = torch.sigmoid(self.mlp(q) @ c.transpose(-1, -2))
            y = torch.sigmoid(self.mlp(k) @ c.transpose(-1, -2))
            gram = c @ c.transpose(-1, -2)
            return x, y, torch.softmax(gram.flatten(1), dim=-1).view_as(gram)

    def sample(self, x, y, s) -> tuple[torch.Tensor, torch.Tensor]:
        """Edges of the sampled masks: rows g*n + i (sorted), columns g*n + j, g over batch x heads."""
        b, h, n, k = x.shape
        with torch.no_grad():
            rows, cols, _ = fastrg_edges(x.reshape(b * h, n, k), s.expand(b, h, k, k).reshape(b * h, k, k),
                                         y.reshape(b * h, n, k), delta=self.method.delta,
                                         density=self.method.density, generator=self.sampler)
            with stage("fastRG sampling"):
                if not self.method.multi_edges:
                    rows, cols = _merge_repeats(rows, cols, n)
                return rows, (rows // n) * n + cols

    def forward(self, q, k, v):
        x, y, s = self.memberships(q, k)
        if self.method.variant == "bernoulli":
            return self._dense_bernoulli(q, k, v, x, y, s)
        rows, cols = self.sample(x, y, s)
        # eq. 9: with gradients on, edge probabilities receive dL/dM through M = 1 + STE(p).
        edge_probs = None
        if torch.is_grad_enabled():
            with stage("STE"):
                edge_probs = (x @ s, y)
        return edge_attention(q, k, v, rows, cols, edge_probs)

    def _bernoulli_mask(self, probs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rate = probs + self.method.delta
            if self.method.density > 0:
                rate = rate * (self.method.density * rate.numel() / float(rate.sum()))
            return torch.bernoulli(rate.clamp(0, 1), generator=self.sampler)

    def _dense_bernoulli(self, q, k, v, x, y, s):
        """The released code's path: dense P, Bernoulli mask, masked softmax (O(n^2))."""
        with stage("edge probabilities"):
            probs = x @ s @ y.transpose(-1, -2)
        with stage("Bernoulli sampling"):
            mask = self._bernoulli_mask(probs)
        with stage("masked attention"):
            scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        with stage("STE"):
            scores = scores * (mask + mask * (probs - probs.detach()))  # STE of eq. 9 on sampled edges
        with stage("masked attention"):
            attention = torch.softmax(scores.masked_fill(mask == 0, -torch.inf), dim=-1)
            return attention.nan_to_num(0.0) @ v  # a query with no sampled edge outputs 0

    def sampled_mask(self, q, k) -> torch.Tensor:
        """One draw of the masks as a dense (b, h, n, n) bool tensor (small n only)."""
        b, h, n, _ = q.shape
        x, y, s = self.memberships(q, k)
        if self.method.variant == "bernoulli":
            return self._bernoulli_mask(x @ s @ y.transpose(-1, -2)).bool()
        rows, cols = self.sample(x, y, s)
        mask = torch.zeros(b * h * n, n, dtype=torch.bool, device=q.device)
        mask[rows.long(), (cols % n).long()] = True
        return mask.view(b, h, n, n)

    def edges_per_head(self, q, k) -> torch.Tensor:
        """Sampled edges of one draw, per graph (b x h), as the benchmark sees them."""
        x, y, s = self.memberships(q, k)
        b, h, n, _ = q.shape
        if self.method.variant == "bernoulli":
            return self._bernoulli_mask(x @ s @ y.transpose(-1, -2)).sum((-1, -2)).reshape(b * h)
        rows, _ = self.sample(x, y, s)
        return torch.bincount(rows // n, minlength=b * h)

    def diagnostics(self, q, k, v) -> dict[str, float]:
        b, h, n, _ = q.shape
        edges = self.edges_per_head(q, k).double()
        density = (edges / n**2).view(b, h).mean(0)  # per head, averaged over the batch
        computed = float(edges.sum()) if self.method.variant == "fastrg" else float(b * h * n * n)
        return {"scores_computed": computed, "edges": float(edges.sum()),
                "density_mean": float(density.mean()), "density_std": float(density.std(unbiased=False))}


@dataclass(frozen=True)
class SBM(SampledHooks, Method):
    """SBM-Transformer: per-head masks sampled from a stochastic block model (fastRG)."""

    paper = PAPER
    refusals = {"causal": ("sbm samples a bipartite graph over all query and key clusters; its paper defines"
                           " no causal mask")}
    # fastrg: memberships, probabilities, sampling, sparse attention (and the STE with gradients);
    # bernoulli: the released code's dense path
    stages = ("cluster memberships", "edge probabilities", "fastRG sampling", "STE", "sparse attention",
              "Bernoulli sampling", "masked attention")
    extra_columns = ("edges", "density_mean", "density_std")
    column_help = {"edges": "query-key edges sampled over the batch (per attention call)",
                   "density_mean": "mask density per head, averaged over the batch, then over heads",
                   "density_std": "the spread of that density over heads"}

    clusters: int = param(128, "k, cluster embeddings per head", low=1)
    delta: float = param(0.01, "exploration probability added to every pair", low=0, high=1)
    density: float = param(0.0, "target mean density: scales the expected edge count to density x n^2; the merged "
                           "(binary) mask's realised density is lower where edges repeat, i.e. close to the target "
                           "only at low density (rows record density_mean); the paper's trained models reach 0.01 "
                           "to 0.1", low=0, high=1,
                           default_means="as initialised, about a quarter of all pairs, so O(n^2) work; give e.g. "
                                         "-p density=0.01")
    variant: str = param("fastrg", "fastrg (paper, sparse) or bernoulli (the released code's dense forward; its "
                         "backward here is eq. 9's straight-through, not the released clipping)",
                         choices=("fastrg", "bernoulli"))
    multi_edges: bool = param(False, "keep repeated sampled edges (official fastRG) instead of a binary mask")

    def build(self, shape, *, device, dtype, generator):
        attention = SBMAttention(self, shape, device, dtype, generator)
        if self.variant == "fastrg":
            _check_sparse_kernels(device, dtype)
        return attention

    def _dense_part(self, shape: Shape) -> float:
        """MLP on q and k, memberships, C C^T, and the sampler's Y S^T (or the dense X S Y^T)."""
        g, n, p, k = shape.rows, shape.seq_len, shape.head_dim, self.clusters
        common = 2 * (2 * g * n * p * p * 2) + 2 * (2 * g * n * p * k) + 2 * shape.heads * k * k * p
        if self.variant == "bernoulli":
            return common + 2 * g * n * k * k + 2 * g * n * n * k
        return common + 2 * g * k * k + 2 * g * n * k * k

    def flops(self, shape: Shape, scores=None) -> float | None:
        if scores is None:  # data dependent: known once a graph is drawn
            return None
        return self._dense_part(shape) + 4 * scores * shape.head_dim  # scores of edges, then weights @ V

    def backward_flops(self, shape: Shape, scores=None) -> float | None:
        if scores is None:
            return None
        g, n, k = shape.rows, shape.seq_len, self.clusters
        sampler = 2 * g * n * k * k if self.variant == "fastrg" else 0  # no gradient through sampling
        straight_through = 3 * (2 * g * n * k * k + 2 * scores * k) if self.variant == "fastrg" else 0
        return 2 * (self.flops(shape, scores) - sampler) + straight_through

    def scores_computed(self, shape: Shape) -> float | None:
        return shape.rows * shape.seq_len**2 if self.variant == "bernoulli" else None

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        if scores is None:
            return None
        g, n, k = shape.rows, shape.seq_len, self.clusters + 1
        if self.variant == "bernoulli":
            return 5 * g * n * n * itemsize
        per_edge = 6 * 8 + 4 * itemsize  # cell, rank, row, col, sort key and index; score, weights, attention
        return scores * per_edge + g * n * k * (3 * itemsize + 3 * 8)  # rates, key CDF, counts and ranks
