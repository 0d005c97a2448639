"""Showing records: the terminal table and progress (render), figures (plot: the efficiency
curves and every figure of a report written at once; accuracy: error, conditioning and density;
axes: what they share), the one-page report (html) and attention patterns (patterns). Metrics
declare their columns and panels (attnbench.metrics.display); views read those declarations.

May import everything below: errors, methods, measure, metrics, plan, results, hf, execute and
judge; never ab or the command line.
"""
