"""Showing records: the terminal table and progress (render), figures (plot), the one-page
report (html) and attention patterns (patterns). Metrics declare their columns and panels
(attnbench.metrics.display); views read those declarations.

May import everything below: errors, methods, measure, metrics, plan, results, hf, execute and
judge; never ab or the command line.
"""
