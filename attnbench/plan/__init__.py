"""Planning a run, before anything is measured: the value grammar and every closed choice
(values), the option spec of every command (options), the case and its set-up (case), the scopes
(scopes), where q, k, v come from (sources) and scenario files (scenario).

May import attnbench.errors, attnbench.tomlfile, attnbench.methods (contract and registry, to check
names and parameters), attnbench.measure and the metric contract (attnbench.metrics: names). No
torch at import: a bad plan fails before torch loads.
"""
