"""Judging records: pure functions of rows. Two reports compared (compare), the summary of one
(summary: exponents, crossovers, ratios), the papers' tables beside ours (papers) and a metric's
series over commits (history).

May import anything up to attnbench.execute and the metric passes; never views, ab or the
command line. Nothing here reads a file except at its edge (a `*_reports`/paths wrapper).
"""
