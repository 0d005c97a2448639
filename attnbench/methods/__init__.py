"""Built-in methods: importing this package registers each one (one file per method)."""

from attnbench.methods import full, kernelized, sbm, skyformer, smartbird  # noqa: F401
