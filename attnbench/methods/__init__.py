"""Built-in methods: importing this package registers each one (one file per method)."""

from attnbench.methods import (  # noqa: F401
    bigbird, full, kernelized, linear, linformer, longformer, nystromformer, performer, sbm, skyformer,
    smartbird, sparse_transformer, reformer, informer, peers,
)
