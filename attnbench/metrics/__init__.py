"""Built-in metrics: each module here holds one `METRIC` (see attnbench.metric); the registry
finds them by listing this package, so adding a metric is adding a file."""
