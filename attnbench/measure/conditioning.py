"""How hard a case is for an approximation of softmax attention, from q, k and the matrices a
method builds: the scores' range and the exact attention's peakiness (computed over blocks of
query rows, never n x n at once), a landmark matrix's conditioning, and approximated row sums
against the exact ones. Instruments only: tensors in, numbers out."""

from __future__ import annotations

import torch

ROW_BLOCK_BYTES = 64 * 2**20  # the scores of one block of query rows


def _row_blocks(q: torch.Tensor, k: torch.Tensor):
    """(start, stop) of query-row blocks whose (b, h, rows, n) scores take about ROW_BLOCK_BYTES."""
    b, h, n, _ = q.shape
    rows = max(1, ROW_BLOCK_BYTES // (b * h * k.shape[-2] * 8))
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def score_figures(q: torch.Tensor, k: torch.Tensor) -> dict[str, float]:
    """The largest |q.k| / sqrt(p), and exact softmax attention's mean largest weight per row
    (1/n: uniform; 1: every row on one key) and mean row entropy over log n (1: uniform)."""
    q, k = q.double(), k.double()
    n, scale = k.shape[-2], q.shape[-1] ** -0.5
    largest, peak, entropy = 0.0, 0.0, 0.0
    for start, stop in _row_blocks(q, k):
        scores = (q[..., start:stop, :] @ k.transpose(-1, -2)) * scale
        largest = max(largest, float(scores.abs().max()))
        log_weights = torch.log_softmax(scores, dim=-1)
        peak += float(log_weights.amax(-1).exp().sum())
        entropy += float(-(log_weights.exp() * log_weights).sum(-1).sum())
    rows = q.shape[0] * q.shape[1] * q.shape[-2]
    return {"cond_score_max": largest, "cond_peak_weight_mean": peak / rows,
            "cond_entropy_fraction": entropy / rows / max(torch.log(torch.tensor(float(n))).item(), 1e-300)}


def exact_row_sums(q: torch.Tensor, k: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
    """sum_j exp(q_i.k_j - shift_i) per query (b, h, n), over blocks of rows; q and k as the
    method scales them (the exponent is q.k itself), `shift` per query (default 0)."""
    q, k = q.double(), k.double()
    parts = []
    for start, stop in _row_blocks(q, k):
        scores = q[..., start:stop, :] @ k.transpose(-1, -2)
        if shift is not None:
            scores = scores - shift[..., start:stop].double().unsqueeze(-1)
        parts.append(scores.exp().sum(-1))
    return torch.cat(parts, dim=-1)


def row_sum_figures(approx: torch.Tensor, exact: torch.Tensor, low: float = 0.5) -> dict[str, float]:
    """Approximated row sums (the normaliser a method divides by) against the exact ones: the
    smallest ratio, and the fractions of rows at or below 0 and below `low` of the exact."""
    ratio = approx.double() / exact.double()
    return {"cond_row_sum_ratio_min": float(ratio.min()),
            "cond_row_sums_nonpositive": float((approx <= 0).double().mean()),
            "cond_row_sums_low": float((ratio < low).double().mean())}


def inverse_figures(matrix: torch.Tensor, inverse: torch.Tensor) -> dict[str, float]:
    """A landmark matrix (..., m, m) and the inverse a method uses: its largest condition number
    over batch and heads (2-norm), its smallest numerical rank at pinv's cutoff (m * eps * the
    largest singular value, in the matrix's dtype), and the largest ||I - Z M||_2."""
    values = torch.linalg.svdvals(matrix.double())
    cutoff = values[..., :1] * matrix.shape[-1] * torch.finfo(matrix.dtype).eps
    eye = torch.eye(matrix.shape[-1], dtype=torch.float64, device=matrix.device)
    residual = torch.linalg.matrix_norm(eye - inverse.double() @ matrix.double(), ord=2)
    return {"cond_landmark_condition": float((values[..., 0] / values[..., -1]).max()),
            "cond_landmark_rank": int((values > cutoff).sum(-1).min()),
            "cond_inverse_residual": float(residual.max())}
