"""Approximation error: relative spectral and Frobenius errors of the output against an exact
method (`--reference`, float64), the effective attention matrix's spectral error (dense up to
n = 1024, matrix-free above), and, for a method with its own exact target (Skyformer:
kernelized attention), the error against that target; mean and std over `--repeats` draws.
The norms are attnbench.measure.error's; which methods are built and compared is decided here."""

from attnbench.metrics import Metric
from attnbench.metrics.display import Column, fmt_number
from attnbench.metrics.policies import Tolerance

SCOPE_ONLY = "the error metric compares attention outputs with exact attention: use it at --scope attention"


def case_errors(case, method, q, k, v, *, reference: str, repeats: int, recorded=None) -> dict:
    """Output and attention-matrix errors of `method` against `reference` (and against the
    method's exact target, e.g. Skyformer's kernelized attention), over `repeats` draws; with
    `recorded` (a captured model's own attention output for these q, k, v), the error against it
    and how far the reference itself is from it."""
    import dataclasses

    import torch

    from attnbench.measure.error import attention_error, frozen_draws, mean_std, relative_errors, value_width
    from attnbench.methods.registry import create_method

    shape, wide = case.shape, torch.float64
    exact_inputs = (q.to(wide), k.to(wide), v.to(wide))
    exact_shape = dataclasses.replace(shape, cache="kv")  # the exact output over every key, whatever the cache

    def exact(name, on=exact_shape, **params):
        target = create_method(name, **params)
        refused = target.unsupported(on, "forward")
        if refused:
            raise ValueError(f"--reference {name} cannot be the exact target here: {refused}")
        return frozen_draws(target, target.make(on, device=q.device, dtype=wide,
                                                generator=torch.Generator().manual_seed(case.seed)))

    def draw(repeat, on=shape):
        generator = torch.Generator().manual_seed(case.seed * 1000 + repeat + 1)
        fn = method.make(on, device=q.device, dtype=q.dtype, generator=generator)
        return frozen_draws(method, method.recurrent(fn, k, v) if on.cache == "state" else fn)

    references = {"": exact(reference)}
    if method.exact_target:
        references["target_"] = exact(method.exact_target, **method.exact_target_params())
    exact_outputs = {key: ref(*exact_inputs) for key, ref in references.items()}
    if recorded is not None:
        exact_outputs["model_"] = recorded.to(q.device, wide)
    found, first = _output_errors(draw, q, k, v, exact_outputs, repeats)
    # The attention matrix per query head: grouped k are repeated to every head (the matrix each
    # query head applies is the same; a shared V would mix a group's heads in the transpose).
    target, wide_k, exact_k = references[""], k, exact_inputs[1]
    if shape.grouped:
        first, target = draw(0, shape.per_head()), exact(reference, exact_shape.per_head())
        wide_k = k.repeat_interleave(shape.group, dim=1)
        exact_k = wide_k.to(wide)
    attention = None
    if _takes_values_of_width(first, q, wide_k, value_width(shape.seq_len)):
        attention = attention_error(first, target, q, wide_k, exact_inputs[0], exact_k)
    spectral, spectral_std = mean_std(found["spectral"])
    result = {"error_reference": reference, "error_spectral": spectral, "error_spectral_std": spectral_std,
              "error_frobenius": mean_std(found["frobenius"])[0], "error_attention_spectral": attention}
    if recorded is not None:
        result.update(error_model_spectral=mean_std(found["model_spectral"])[0],
                      error_capture_check=float(relative_errors(exact_outputs[""], exact_outputs["model_"])
                                                ["spectral"].mean()))
    if method.exact_target:
        target_spectral, target_std = mean_std(found["target_spectral"])
        result.update(error_target=method.exact_target, error_target_spectral=target_spectral,
                      error_target_spectral_std=target_std)
    return result


def _output_errors(draw, q, k, v, exact_outputs: dict, repeats: int) -> tuple[dict[str, list[float]], object]:
    """Each draw's spectral and Frobenius errors against every exact output, and the first draw."""
    from attnbench.measure.error import relative_errors

    found: dict[str, list[float]] = {}
    first = None
    for repeat in range(repeats):
        fn = draw(repeat)
        first = first or fn
        out = fn(q, k, v)
        for key, target in exact_outputs.items():
            errors = relative_errors(out, target)
            found.setdefault(f"{key}spectral", []).append(float(errors["spectral"].mean()))
            found.setdefault(f"{key}frobenius", []).append(float(errors["frobenius"].mean()))
    return found, first


def _takes_values_of_width(fn, q, k, width: int) -> bool:
    """Whether fn accepts a V of another width than its heads' (the attention matrix is read off
    fn(q, k, V) for such V). Fused kernels and some wrapped implementations do not: their
    error_attention_spectral is left empty. Any other failure of the estimate is the row's error."""
    import torch

    b, h, m, _ = q.shape
    try:
        out = fn(q, k, torch.zeros(*k.shape[:-1], width, dtype=q.dtype, device=q.device))
    except torch.OutOfMemoryError:
        raise
    except Exception:  # what refuses the shape is the method's own code, whatever it raises
        return False
    return tuple(out.shape) == (b, h, m, width)  # some reshape V to their heads' width instead


def measure(ctx) -> dict:
    if ctx.case.scope != "attention":
        raise ValueError(SCOPE_ONLY)
    import torch

    recorded = None
    if ctx.case.inputs.startswith("capture:"):
        from attnbench.hf.capture import layer_tensors
        from attnbench.plan.sources import capture_path

        recorded = layer_tensors(capture_path(ctx.case.inputs), ctx.case.capture, ctx.case.layer)[3]
    with torch.no_grad():  # the matrix-free estimate turns gradients on where it needs them
        return case_errors(ctx.case, ctx.method, ctx.q.detach(), ctx.k.detach(), ctx.v.detach(),
                           reference=ctx.options.reference, repeats=ctx.options.repeats, recorded=recorded)


def check(cases, options) -> None:
    """A reference that cannot run a case's shape (SDPA cannot soft-cap) is refused before anything
    runs, in one line that says which to give instead."""
    import dataclasses

    from attnbench.errors import AttnbenchError
    from attnbench.methods.registry import create_method

    reference = create_method(options.reference)
    for case in cases:
        if case.scope != "attention":
            continue
        refused = reference.unsupported(dataclasses.replace(case.shape, cache="kv"), "forward")
        if refused:
            raise AttnbenchError(f"--reference {options.reference} cannot be the exact target of {case.method} at "
                                 f"n={case.seq_len}: {refused}")


METRIC = Metric(
    column_help={"error_reference": "the exact method compared with (--reference)",
                 "error_spectral": "relative spectral error of the output against the reference in float64, mean "
                                   "over --repeats draws",
                 "error_spectral_std": "its standard deviation over the draws",
                 "error_frobenius": "relative Frobenius error of the output, mean over the draws",
                 "error_attention_spectral": "relative spectral error of the effective n x n attention matrix "
                                             "(dense to n = 1024, matrix-free above; empty for a kernel that "
                                             "takes no V of another width than its heads')",
                 "error_model_spectral": "capture inputs: relative spectral error of the output against the "
                                         "model's own recorded attention output, mean over the draws",
                 "error_capture_check": "capture inputs: relative spectral error of --reference (float64) on the "
                                        "captured q, k, v against the model's recorded output (near 0 when the "
                                        "capture saw what the model attends with; the run warns above 1e-4)",
                 "error_target": "the method's own exact target (Skyformer: kernelized attention)",
                 "error_target_spectral": "relative spectral error against that target, mean over the draws",
                 "error_target_spectral_std": "its standard deviation over the draws"},
    name="error", order=50, default=False, measure=measure,
    columns=("error_reference", "error_spectral", "error_spectral_std", "error_frobenius",
             "error_attention_spectral", "error_model_spectral", "error_capture_check", "error_target",
             "error_target_spectral", "error_target_spectral_std"),
    types={"error_reference": str, "error_target": str}, scopes=("attention",), scope_error=SCOPE_ONLY,
    help="relative spectral/Frobenius error against --reference in float64, for --repeats draws",
    compare=Tolerance("error_spectral", rel=0.10, absolute=1e-6), check=check,
    table=(Column("error", sort="error_spectral", cell=lambda row: fmt_number(row.get("error_spectral"), ".3g")),),
)
