"""The record: a report's columns and their types (schema), and the one writer and the one reader
of a report and its samples sidecar (report).

May import attnbench.errors, attnbench.methods, attnbench.measure, the metric contract and
attnbench.plan. No torch at import: reading a report needs none.
"""
