"""Peak memory one call allocates beyond its inputs: the CPU allocator's events under the
profiler, or CUDA's max_memory_allocated on a GPU (and max_memory_reserved, as
peak_mem_reserved_bytes). For a layer or model the weights count as
inputs; a backward or training step is measured from no gradients and (train) a fresh AdamW, so
its gradients and optimizer state are in the peak."""

from attnbench.metrics import Metric
from attnbench.metrics.display import Column, Panel, fmt_bytes
from attnbench.metrics.policies import Tolerance


def measure(ctx) -> dict:
    from attnbench.measure.memory import peak_bytes

    ctx.fresh_state()  # a training step allocates its gradients and optimizer state anew
    return peak_bytes(ctx.call, ctx.device)


METRIC = Metric(
    column_help={"peak_mem_bytes": "peak bytes one call allocates beyond its inputs (CPU allocator events, or "
                                   "CUDA's max_memory_allocated)",
                 "peak_mem_reserved_bytes": "CUDA: the caching allocator's peak reserve above its baseline"},
    types={"peak_mem_bytes": int, "peak_mem_reserved_bytes": int},
    name="memory", order=40, columns=("peak_mem_bytes", "peak_mem_reserved_bytes"), measure=measure,
    help="peak bytes allocated by one call beyond its inputs",
    compare=Tolerance("peak_mem_bytes", rel=0.02, absolute=64 * 1024),
    template_imports=("torch._dynamo",),  # the profiler imports it when it starts
    table=(Column("peak mem", sort="peak_mem_bytes", cell=lambda row: fmt_bytes(row.get("peak_mem_bytes"))),),
    panels=(Panel("peak_mem_bytes", "peak memory (bytes)"),),
)
